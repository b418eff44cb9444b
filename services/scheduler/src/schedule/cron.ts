// Cron arithmetic in one place. cron-parser's next()/prev() are strict (a slot equal to the
// current date is neither), so "the latest slot at or before now" looks back from now + 1 ms.
import { CronExpressionParser } from 'cron-parser';

export interface CronSpec {
  readonly cron: string;
  readonly timezone: string;
}

/** The first slot strictly after `after`. */
export function nextSlot(spec: CronSpec, after: Date): Date {
  return CronExpressionParser.parse(spec.cron, { currentDate: after, tz: spec.timezone }).next().toDate();
}

/** The latest slot at or before `at`, or undefined when the expression has none. */
export function latestSlotAtOrBefore(spec: CronSpec, at: Date): Date | undefined {
  const expression = CronExpressionParser.parse(spec.cron, { currentDate: new Date(at.getTime() + 1), tz: spec.timezone });
  return expression.hasPrev() ? expression.prev().toDate() : undefined;
}

/** Slots in (from, to], oldest first, at most `limit` of them. */
export function slotsBetween(spec: CronSpec, from: Date, to: Date, limit: number): Date[] {
  const expression = CronExpressionParser.parse(spec.cron, { currentDate: from, endDate: to, tz: spec.timezone });
  const slots: Date[] = [];
  while (slots.length < limit && expression.hasNext()) slots.push(expression.next().toDate());
  return slots;
}
