/** The six lifecycle states of a workspace, in the order of a normal life. */
export const STATES = ['created', 'active', 'suspended', 'frozen', 'archived', 'deleted'] as const;

export type State = (typeof STATES)[number];

export function isState(value: unknown): value is State {
  return typeof value === 'string' && (STATES as readonly string[]).includes(value);
}
