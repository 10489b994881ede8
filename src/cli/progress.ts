// Progress reports a wait on stderr: one updating line on a terminal, short
// lines on state changes otherwise.

export class Progress {
  private state = 'adding';
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = Date.now();
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly what: string) {
    if (this.tty) this.timer = setInterval(() => this.draw(), 200);
  }

  update(state: string): void {
    if (state === this.state) return;
    this.state = state;
    if (this.tty) this.draw();
    else process.stderr.write(`gaffer: ${this.what}: ${state}\n`);
  }

  private draw(): void {
    const secs = ((Date.now() - this.t0) / 1000).toFixed(1);
    process.stderr.write(`\r\x1b[2Kwaiting for ${this.what}: ${this.state} (${secs}s)`);
  }

  done(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) process.stderr.write('\r\x1b[2K');
  }
}
