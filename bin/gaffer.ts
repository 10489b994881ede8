#!/usr/bin/env node
// The composition root: the one place that sees both the building blocks
// (src/) and the behaviour (actors/). It gives the CLI the processes that run
// each long-running role; everything else is in src/cli.

import { run } from '#cli/program.js';
import { MasterProcess } from '#actors/master/process.js';
import { WorkerProcess } from '#actors/worker/process.js';

void run({
  master: (cfg) => MasterProcess.start(cfg),
  worker: (cfg) => WorkerProcess.start(cfg),
});
