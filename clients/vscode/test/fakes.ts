/** Fakes of the seam: a status bar and a UI that record what the controller asks of them. */

import { BarItem, PickItem, StatusBar, Timer, TimerPurpose, Ui } from '../src/seam';

export class FakeBar implements StatusBar {
  readonly renders: BarItem[][] = [];

  render(items: readonly BarItem[]): void {
    this.renders.push([...items]);
  }

  /** What the status bar shows now. */
  get items(): BarItem[] {
    return this.renders[this.renders.length - 1] ?? [];
  }

  get texts(): string[] {
    return this.items.map((item) => item.text);
  }
}

/** A UI whose answers are scripted: `pick` chooses from the quick pick, `passphrase` is typed. */
export class FakeUi implements Ui {
  readonly errors: string[] = [];
  readonly infos: string[] = [];
  readonly logs: string[] = [];
  readonly outputs: Array<{ title: string; lines: string[] }> = [];
  readonly picks: Array<PickItem<unknown>[]> = [];
  readonly prompts: string[] = [];
  pick: (items: PickItem<unknown>[]) => PickItem<unknown> | undefined = () => undefined;
  passphrase: string | undefined;

  async showQuickPick<T>(items: PickItem<T>[]): Promise<PickItem<T> | undefined> {
    this.picks.push(items);
    return this.pick(items) as PickItem<T> | undefined;
  }

  async askPassphrase(prompt: string): Promise<string | undefined> {
    this.prompts.push(prompt);
    return this.passphrase;
  }

  showOutput(title: string, lines: readonly string[]): void {
    this.outputs.push({ title, lines: [...lines] });
  }

  showError(message: string): void {
    this.errors.push(message);
  }

  showInfo(message: string): void {
    this.infos.push(message);
  }

  log(line: string): void {
    this.logs.push(line);
  }
}

/** Real timers that record each one asked for: its purpose, its delay, whether it fired. */
export class RecordingTimer implements Timer {
  readonly asked: Array<{ purpose: TimerPurpose; ms: number; fired: boolean }> = [];

  setTimeout(callback: () => void, ms: number, purpose: TimerPurpose): unknown {
    const record = { purpose, ms, fired: false };
    this.asked.push(record);
    return setTimeout(() => {
      record.fired = true;
      callback();
    }, ms);
  }

  clearTimeout(handle: unknown): void {
    clearTimeout(handle as NodeJS.Timeout);
  }

  /** The delays asked for `purpose` (the reconnection delays by default), in order. */
  delays(purpose: TimerPurpose = 'retry'): number[] {
    return this.asked.filter((t) => t.purpose === purpose).map((t) => t.ms);
  }
}

/** Timers that fire only when the test fires them. */
export class ManualTimer implements Timer {
  readonly asked: Array<{ purpose: TimerPurpose; ms: number }> = [];
  private readonly waiting = new Map<number, { callback: () => void; ms: number; purpose: TimerPurpose }>();
  private handles = 0;

  setTimeout(callback: () => void, ms: number, purpose: TimerPurpose): unknown {
    this.asked.push({ purpose, ms });
    this.waiting.set(++this.handles, { callback, ms, purpose });
    return this.handles;
  }

  clearTimeout(handle: unknown): void {
    this.waiting.delete(handle as number);
  }

  delays(purpose: TimerPurpose = 'retry'): number[] {
    return this.asked.filter((t) => t.purpose === purpose).map((t) => t.ms);
  }

  /** The purposes of the timers set and neither fired nor cleared. */
  get pending(): TimerPurpose[] {
    return [...this.waiting.values()].map((t) => t.purpose);
  }

  /** The delay of the pending timer for `purpose`, if one is. */
  pendingDelay(purpose: TimerPurpose): number | undefined {
    return [...this.waiting.values()].find((t) => t.purpose === purpose)?.ms;
  }

  /** Fires the pending timer for `purpose` (the test fails if none is). */
  fire(purpose: TimerPurpose): void {
    const entry = [...this.waiting.entries()].find(([, t]) => t.purpose === purpose);
    if (entry === undefined) {
      throw new Error(`no ${purpose} timer pending (pending: ${this.pending.join(', ') || 'none'})`);
    }
    this.waiting.delete(entry[0]);
    entry[1].callback();
  }
}
