#!/usr/bin/env node
// The composition root: the one place that sees both the building blocks
// (src/) and the behaviour (actors/). It gives the CLI the actors that run
// each long-running role; everything else is in src/cli.

import { run } from '#cli/program.js';
import { Master } from '#actors/master/master.js';
import { Worker } from '#actors/worker/worker.js';

void run({
  master: (cfg) => Master.start(cfg),
  worker: (cfg) => Worker.start(cfg),
});
