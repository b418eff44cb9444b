// Suppresses repeats: an alert whose dedupe key was delivered inside the window is dropped.
// In memory on purpose; across instances and restarts the alert stream's msgId dedupe covers it.

export class DedupeWindow {
  private readonly lastSeen = new Map<string, number>();

  constructor(private readonly windowMs: number) {}

  /** True the first time a key is offered inside the window; marks it as seen. */
  admit(key: string, now: Date): boolean {
    this.prune(now);
    const seen = this.lastSeen.get(key);
    if (seen !== undefined && now.getTime() - seen < this.windowMs) return false;
    this.lastSeen.set(key, now.getTime());
    return true;
  }

  /** Forgets a key, so that a delivery that failed to publish can be tried again. */
  forget(key: string): void {
    this.lastSeen.delete(key);
  }

  get size(): number {
    return this.lastSeen.size;
  }

  private prune(now: Date): void {
    for (const [key, seen] of this.lastSeen) {
      if (now.getTime() - seen >= this.windowMs) this.lastSeen.delete(key);
    }
  }
}
