export * from './states';
export * from './transition';
export * from './duration';
export * from './policy';
