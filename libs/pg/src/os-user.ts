// The OS user PostgreSQL's processes (servers, pg_receivewal) run as when Tidemark runs as root:
// PostgreSQL refuses to run as root, and the files it writes must belong to that user.
import { readFile } from 'node:fs/promises';
import { TidemarkError } from '@tidemark/contracts';

/** The uid/gid to run as when we are root; undefined otherwise (the process runs as us). */
export async function osUserIds(name: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = await readFile('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new TidemarkError('CONFIG_INVALID', `the ${name} os user does not exist, and PostgreSQL's processes will not run as root: create it (installing postgresql does) or set pg.osUser`);
}
