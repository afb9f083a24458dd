import { isIP } from 'node:net';

/**
 * True when a listen address is loopback only: `localhost`, 127.0.0.0/8, ::1 (and ::ffff:127.x.x.x).
 * Anything else, the wildcards 0.0.0.0 and :: included, is reachable from other machines.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || /^(0{1,4}:){7}0{0,3}1$/.test(h) || /^::ffff:127\./.test(h);
  return false;
}
