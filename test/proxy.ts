// A TCP proxy on loopback that a test can cut and restore: a real network
// fault between one process and one server, leaving everyone else connected.

import { createServer, connect, type Server, type Socket } from 'node:net';
import { after } from 'node:test';

export class Proxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(readonly port: number, private readonly target: { host: string; port: number }) {}

  static async start(targetUrl: string): Promise<Proxy> {
    const u = new URL(targetUrl);
    const p = new Proxy(0, { host: u.hostname, port: Number(u.port) });
    const port = await p.listen(0);
    (p as { port: number }).port = port;
    after(() => p.close());
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private listen(port: number): Promise<number> {
    this.server = createServer((client) => {
      const upstream = connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    return new Promise((resolve) => this.server!.listen(port, '127.0.0.1', () => resolve((this.server!.address() as { port: number }).port)));
  }

  /** cut drops every connection and refuses new ones. */
  async cut(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
    this.server = undefined;
  }

  /** restore accepts connections again on the same port. */
  async restore(): Promise<void> {
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.cut();
  }
}
