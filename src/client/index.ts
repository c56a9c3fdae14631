// The AoE initiator: one import for tests, the demo and the bench.
export * from './wire';
export * from './mac';
export * from './requests';
export * from './replies';
export * from './identify';
export * from './pattern';
export * from './histogram';
export * from './errors';
export * from './transport';
export * from './exchange';
export * from './client';
export * from './load';
