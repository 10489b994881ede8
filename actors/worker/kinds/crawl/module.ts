// The crawl kind as a kind module (a default export of kinds), so a
// ThreadHost can load it like any user module and run each crawl in a thread.

import type { TaskKinds } from '#kinds/api.js';
import { crawl } from './index.js';

const kinds: TaskKinds = { crawl };
export default kinds;
