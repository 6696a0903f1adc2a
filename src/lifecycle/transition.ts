import { State, STATES, isState } from './states';

/**
 * The legal edges of the lifecycle map. Nothing else moves: there are no implicit transitions.
 * created→active, active→suspended|archived, suspended→active|frozen, frozen→active|archived,
 * archived→active|deleted; deleted is terminal.
 */
const LEGAL = {
  created: ['active'],
  active: ['suspended', 'archived'],
  suspended: ['active', 'frozen'],
  frozen: ['active', 'archived'],
  archived: ['active', 'deleted'],
  deleted: [],
} as const satisfies Record<State, readonly State[]>;

export const EDGES: Readonly<Record<State, readonly State[]>> = Object.freeze(LEGAL);

/** One legal edge as `from->to`: a table keyed by `Edge` must name every legal edge and nothing else. */
export type Edge = { [F in State]: `${F}->${(typeof LEGAL)[F][number]}` }[State];

/** The legal edge `from -> to`, or null when the move is not legal. */
export function edgeOf(from: State, to: State): Edge | null {
  return isState(from) && isState(to) && EDGES[from].includes(to) ? (`${from}->${to}` as Edge) : null;
}

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
