// The protocol layer's public surface. Pure: no I/O, no node: imports.
export * from './constants';
export * from './header';
export * from './ata';
export * from './identify';
export * from './config-query';
export * from './mac-mask';
export * from './mac-list';
export * from './reserve';
export * from './broadcast-edit';
export * from './target-state';
export * from './frame-context';
export * from './dispatch';
export * from './unsaved-state';
