import { State, STATES, isState } from './states';

/**
 * The legal edges of the lifecycle map. Nothing else moves: there are no implicit transitions.
 * created→active, active→suspended|archived, suspended→active|frozen, frozen→active|archived,
 * archived→active|deleted; deleted is terminal.
 */
export const EDGES: Readonly<Record<State, readonly State[]>> = Object.freeze({
  created: ['active'],
  active: ['suspended', 'archived'],
  suspended: ['active', 'frozen'],
  frozen: ['active', 'archived'],
  archived: ['active', 'deleted'],
  deleted: [],
});

export type TransitionResult =
  | { ok: true; state: State }
  | { ok: false; error: 'invalid'; message: string };

/** Is `from → to` a legal edge? Pure; shared by the workflow and every client. */
export function transition(from: State, to: State): TransitionResult {
  if (!isState(from)) return { ok: false, error: 'invalid', message: `unknown state '${String(from)}' (states: ${STATES.join(', ')})` };
  if (!isState(to)) return { ok: false, error: 'invalid', message: `unknown state '${String(to)}' (states: ${STATES.join(', ')})` };
  if (EDGES[from].includes(to)) return { ok: true, state: to };
  const legal = EDGES[from];
  return {
    ok: false,
    error: 'invalid',
    message:
      legal.length === 0
        ? `cannot move from ${from} to ${to}: ${from} is terminal`
        : `cannot move from ${from} to ${to}: from ${from} a workspace can only go to ${legal.join(' or ')}`,
  };
}

/** The states a workspace in `from` may move to. */
export function nextStates(from: State): readonly State[] {
  return EDGES[from];
}
