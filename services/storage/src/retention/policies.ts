import { effectiveTarget, type TidemarkConfig } from '@tidemark/config';
import { targetKey } from '../catalog/entry.js';
import type { RetentionPolicy } from './plan.js';

/** Each configured target's effective retention (its own, or the file's default). */
export function retentionPolicies(config: TidemarkConfig): Map<string, RetentionPolicy> {
  const policies = new Map<string, RetentionPolicy>();
  for (const target of config.targets) {
    const { retention } = effectiveTarget(config, target);
    const { keepLast, maxAgeDays, keepDaily, keepWeekly, keepMonthly } = retention;
    policies.set(targetKey(target.engine, target.name), { keepLast, maxAgeDays, keepDaily, keepWeekly, keepMonthly });
  }
  return policies;
}
