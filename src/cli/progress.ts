/** One-line progress on stderr for long jobs: done/total, rate and time left. */
export class Progress {
  private start = performance.now();
  private last = 0;
  constructor(private label: string, private total: number, private stream = process.stderr) {}

  update(done: number, extra = ""): void {
    const now = performance.now();
    if (done < this.total && now - this.last < 200) return;
    this.last = now;
    const el = (now - this.start) / 1000;
    const eta = done > 0 ? (el / done) * (this.total - done) : NaN;
    const pct = ((100 * done) / this.total).toFixed(0).padStart(3);
    const line = `${this.label} ${pct}% ${done}/${this.total} | ${el.toFixed(1)} s${Number.isFinite(eta) && done < this.total ? `, ${eta.toFixed(1)} s left` : ""}${extra ? ` | ${extra}` : ""}`;
    if (this.stream.isTTY) this.stream.write(`\r${line}\x1b[K${done >= this.total ? "\n" : ""}`);
    else if (done >= this.total || done % Math.max(1, Math.ceil(this.total / 10)) === 0) this.stream.write(line + "\n");
  }
}
