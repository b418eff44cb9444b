// Peak resident memory of child processes, read from the kernel's high-water mark (VmHWM in
// /proc/<pid>/status), so a short spike between two samples is still counted.
import { readFile } from 'node:fs/promises';

/**
 * Samples VmHWM of every pid added, every `intervalMs`. A process's own high-water mark never
 * falls, so sampling only has to happen before it exits: `add` a pid when it is spawned and
 * `sample()` once more just before stopping it.
 */
export function peakRssSampler(intervalMs = 200) {
  const pids = new Set();
  let peakKiB = 0;
  const sample = async () => {
    for (const pid of pids) {
      const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
      peakKiB = Math.max(peakKiB, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
    }
  };
  const timer = setInterval(sample, intervalMs);
  return {
    add(pid) {
      if (pid !== undefined) pids.add(pid);
    },
    sample,
    /** The highest VmHWM seen so far, in MiB. */
    peakMiB: () => peakKiB / 1024,
    stop() {
      clearInterval(timer);
    },
  };
}
