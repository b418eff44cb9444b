// A first, cheap pass over the tree when it matters: which hard links need their content from an
// entry the restore would otherwise skip (its first path is outside the selected paths, or the
// destination has no hard links at all, as in S3). Only those entries are then kept in memory.
import { TidemarkError } from '@tidemark/contracts';
import type { TreeEntry } from '../tree/entry.js';
import { bytesOf } from '../tree/paths.js';
import { entryPath, pathKey, pathProblem, type PathSelection } from './confine.js';

/**
 * The linkTo keys of the selected hard links whose content must come from their first entry:
 * every one (`everyLink`), or only those whose first entry is not selected. Marks the selection's
 * matches, and fails with COMMAND_INVALID when a requested path is not in the tree.
 */
export async function linkTargetsToKeep(tree: AsyncIterable<TreeEntry>, selection: PathSelection | undefined, everyLink: boolean): Promise<Set<string>> {
  const keep = new Set<string>();
  for await (const entry of tree) {
    if (typeof entry.path !== 'string') continue;
    const path = entryPath(entry);
    if (selection !== undefined && !selection.selects(path)) continue;
    if (entry.type !== 'hardlink' || typeof entry.linkTo !== 'string') continue;
    const linkTo = bytesOf(entry.linkTo, entry.linkToBase64);
    if (pathProblem(linkTo) !== undefined) continue;
    if (everyLink || (selection !== undefined && !selection.selects(linkTo, false))) keep.add(pathKey(linkTo));
  }
  const unmatched = selection?.unmatched() ?? [];
  if (unmatched.length > 0) throw new TidemarkError('COMMAND_INVALID', `the snapshot holds none of the paths ${unmatched.map((path) => JSON.stringify(path)).join(', ')}`);
  return keep;
}
