// Workflow code bundled for the worker: only deterministic modules are reachable from here.
export { workspace } from './workspace';
