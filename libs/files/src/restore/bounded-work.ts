// Work started as it comes but never more than so many tasks, or so many bytes, at once: the
// restore's parallelism with a memory bound. The first failure stops new work; drain() waits for
// what runs and reports the failure that started it all.
import { firstCause } from '@tidemark/pipeline';

export class BoundedWork {
  private running = 0;
  private weight = 0;
  private readonly failures: unknown[] = [];
  private waiters: (() => void)[] = [];

  constructor(
    private readonly maxTasks: number,
    private readonly maxWeight = Number.POSITIVE_INFINITY,
  ) {}

  get failed(): boolean {
    return this.failures.length > 0;
  }

  /** Starts `task` once there is room (a task heavier than maxWeight runs alone); throws once any task failed. */
  async start(task: () => Promise<void>, weight = 0): Promise<void> {
    while (!this.failed && this.running > 0 && (this.running >= this.maxTasks || this.weight + weight > this.maxWeight)) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.failed) throw firstCause(this.failures);
    this.running += 1;
    this.weight += weight;
    // Not awaited here: the caller goes on producing work; drain() collects the outcome.
    void task()
      .catch((error: unknown) => void this.failures.push(error))
      .finally(() => {
        this.running -= 1;
        this.weight -= weight;
        this.wake();
      });
  }

  /** Records a failure from outside a task (stops further work the same way). */
  fail(error: unknown): void {
    this.failures.push(error);
    this.wake();
  }

  /** Waits until nothing runs; then throws the first cause of any failure. */
  async drain(): Promise<void> {
    while (this.running > 0) await new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.failed) throw firstCause(this.failures);
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}
