/**
 * The local sessions of one app, indexed by device and by shared stream (topic streams and
 * `broadcast`), so a doorbell finds its sessions without scanning every connection. One hub per
 * app (device, user and topic names are per app), all sharing the node's set of `connections`.
 * Generic over the session type, so it imports nothing of the node (see ports.ts: `Registry`,
 * `Audience`).
 */
export class Hub<C> {
  /** A device's one client, or a set when it has several here (rare: no Set per device). */
  private readonly byDevice = new Map<string, C | Set<C>>();
  private readonly byStream = new Map<string, Set<C>>();
  private readonly perUser = new Map<string, number>();
  /** Sessions of this app past hello (counted by `addUser`): the app's connections on this node. */
  private users = 0;

  /** `connections`: every open socket of the node, including those still before hello. */
  constructor(readonly connections: Set<C> = new Set()) {}

  /** Open sockets of the node (all apps). */
  get size(): number {
    return this.connections.size;
  }

  /** This app's sessions on this node. */
  get appSize(): number {
    return this.users;
  }

  addDevice(device: string, c: C): void {
    const s = this.byDevice.get(device);
    if (s === undefined) this.byDevice.set(device, c);
    else if (s instanceof Set) s.add(c);
    else if (s !== c) this.byDevice.set(device, new Set([s, c]));
  }

  /** Returns true when this was the device's last connection on this node. */
  removeDevice(device: string, c: C): boolean {
    const s = this.byDevice.get(device);
    if (s === undefined) return false;
    if (s instanceof Set) {
      s.delete(c);
      if (s.size > 1) return false;
      const [last] = s;
      if (last) {
        this.byDevice.set(device, last);
        return false;
      }
    } else if (s !== c) return false;
    this.byDevice.delete(device);
    return true;
  }

  /** Counts a user's connection unless the user is at `max`; returns false then. */
  addUser(user: string, max: number): boolean {
    const n = this.perUser.get(user) ?? 0;
    if (n >= max) return false;
    this.perUser.set(user, n + 1);
    this.users++;
    return true;
  }

  removeUser(user: string): void {
    if (this.perUser.has(user)) this.users--;
    const n = (this.perUser.get(user) ?? 1) - 1;
    if (n <= 0) this.perUser.delete(user);
    else this.perUser.set(user, n);
  }

  /** The device's client on this node, or a set of them when it has several here. */
  deviceClients(device: string): C | ReadonlySet<C> | undefined {
    return this.byDevice.get(device);
  }

  deviceCount(): number {
    return this.byDevice.size;
  }

  join(stream: string, c: C): void {
    const s = this.byStream.get(stream);
    if (s) s.add(c);
    else this.byStream.set(stream, new Set([c]));
  }

  leave(stream: string, c: C): void {
    const s = this.byStream.get(stream);
    if (!s) return;
    s.delete(c);
    if (s.size === 0) this.byStream.delete(stream);
  }

  streamClients(stream: string): ReadonlySet<C> | undefined {
    return this.byStream.get(stream);
  }
}
