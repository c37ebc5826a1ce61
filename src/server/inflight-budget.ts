/**
 * The limit on requests in flight across all connections together (`--max-inflight-total`).
 *
 * Each connection already stops reading at its own limit, but that alone lets the server hold
 * `--max-connections` times as many requests (and their answers) while the disk is slow. Every
 * request a connection reads takes one unit of this budget until its answer is handed to the socket.
 * A connection that finds the budget spent stops reading and queues; answers handed out give units
 * back, and the queued connections resume in the order they queued, each reading on until it meets
 * a limit again, or has read BUDGET_TURN_REQUESTS while others are queued (and queues again, at the
 * back). The turn is what keeps a light client's wait short behind many deep pipeliners: it waits
 * about (connections ahead) x BUDGET_TURN_REQUESTS requests, not (connections ahead) x --max-inflight.
 */

/** The most requests a connection reads while others are queued for the budget, before it queues too. */
export const BUDGET_TURN_REQUESTS = 64;

/** What the budget resumes: a connection that stopped reading because the budget was spent. */
export interface BudgetWaiter {
  resumeFromBudget(): void;
}

export class InflightBudget {
  private used = 0;
  private readonly waiting: BudgetWaiter[] = [];
  private resumeScheduled = false;

  constructor(readonly limit: number) {}

  /** Requests in flight on all connections now. */
  get inFlight(): number {
    return this.used;
  }

  get spent(): boolean {
    return this.used >= this.limit;
  }

  /** Connections are queued for units: one that has had its turn's worth should queue behind them. */
  get contended(): boolean {
    return this.waiting.length > 0;
  }

  take(): void {
    this.used++;
  }

  /**
   * Gives back `count` units. The queued connections resume on the next tick, not here: this is
   * called while a batch's answers are handed out, and a connection resumed in the middle of that
   * would submit new requests from inside it.
   */
  give(count: number): void {
    this.used -= count;
    if (this.waiting.length > 0 && !this.resumeScheduled && this.used < this.limit) {
      this.resumeScheduled = true;
      process.nextTick(this.resumeWaiting);
    }
  }

  /** Queues `waiter` to be resumed when units are given back. A waiter queues once at a time. */
  wait(waiter: BudgetWaiter): void {
    this.waiting.push(waiter);
  }

  private readonly resumeWaiting = (): void => {
    this.resumeScheduled = false;
    const waiting = this.waiting;
    // Only those queued now: one that queues again while resuming waits for the next give.
    for (let n = waiting.length; n > 0 && this.used < this.limit; n--) waiting.shift()!.resumeFromBudget();
  };
}
