// Responder: the floor processes, one per child process, so each floor pays
// the same process hops a master would.
//
//   node responder.js echo    --nats URL --subject S
//       answers every request with its own body.
//   node responder.js forward --nats URL --subject S --to T
//       re-publishes each request to T with the client's reply subject and the
//       headers a follower adds (Gaffer-Subject, Content-Type); no other work.
//   node responder.js serial  --nats URL --subject S --etcd URLS
//       per request: take a lock, do one etcd put, answer. The cost of
//       committing every request on its own.
//
// SIGTERM drains and exits.

import { headers as natsHeaders, type Msg } from 'nats';
import { EtcdStore } from '#platform/etcd/store.js';
import { Header } from '#protocol/subjects.js';
import { benchConnect } from './wire.js';

function arg(name: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? process.argv[i + 1] : undefined;
  if (!v) throw new Error(`responder: --${name} is required`);
  return v;
}

const OK = new TextEncoder().encode('{"ok":true}');

async function main(): Promise<void> {
  const mode = process.argv[2];
  const nc = await benchConnect(arg('nats'), `bench-${mode}`);
  const subject = arg('subject');
  let store: EtcdStore | undefined;
  let handler: (m: Msg) => void;
  switch (mode) {
    case 'echo':
      handler = (m) => m.respond(m.data);
      break;
    case 'forward': {
      const to = arg('to');
      handler = (m) => {
        const h = natsHeaders();
        h.set(Header.subject, m.subject);
        h.set(Header.contentType, m.headers?.get(Header.contentType) || 'application/json');
        nc.publish(to, m.data, { reply: m.reply, headers: h });
      };
      break;
    }
    case 'serial': {
      const s = await EtcdStore.connect(arg('etcd').split(','), { timeoutMs: 5000 });
      store = s;
      let lock: Promise<void> = Promise.resolve();
      let n = 0;
      handler = (m) => {
        lock = lock.then(async () => {
          try {
            await s.txn(undefined, [{ put: `bench/serial/${n++}`, value: m.data }]);
            m.respond(OK);
          } catch (err) {
            m.respond(new TextEncoder().encode(JSON.stringify({ ok: false, error: { code: 'UNAVAILABLE', message: (err as Error).message } })));
          }
        });
      };
      break;
    }
    default:
      throw new Error(`responder: unknown mode ${mode}; use echo, forward or serial`);
  }
  nc.subscribe(subject, { queue: 'bench', callback: (_err, m) => handler(m) });
  await nc.flush();
  const stop = async () => {
    await nc.drain().catch(() => undefined);
    store?.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
