// An export as the serving core holds it: the engine's export, typed with the
// copy-on-write views the server may give it (the engine itself never looks
// inside them).

import type { Export } from '../engine/export';
import type { ExportViews } from '../views/views';

export type ServedExport = Export<ExportViews>;
