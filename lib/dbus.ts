/**
 * A connection to the system D-Bus (dbus-next) and one proxy object on it, with a bound: dbus-next
 * reports a failed connection only as an 'error' event (its calls then never answer), so the
 * first call races that event and a deadline. Loaded on demand: a node that never talks to
 * systemd does not pay dbus-next's ~10 MiB of RSS.
 */
import type dbus from 'dbus-next';
import type { Logger } from './log.js';

/** DBUS_SYSTEM_BUS_ADDRESS, else systemd's socket. */
export const systemBusAddress = (address?: string) => address ?? process.env.DBUS_SYSTEM_BUS_ADDRESS ?? 'unix:path=/run/dbus/system_bus_socket';

interface SystemBusObject {
  bus: dbus.MessageBus;
  object: dbus.ProxyObject;
}

/** Connects to the system bus at `address` and gets `service`'s object at `path` (15 s bound). */
export async function systemBusObject(address: string, service: string, path: string, log: Logger): Promise<SystemBusObject> {
  const { default: client } = await import('dbus-next');
  // sessionBus() is dbus-next's client for any address (systemBus() takes none).
  const bus = client.sessionBus({ busAddress: address });
  const failed = new Promise<never>((_resolve, reject) => {
    bus.once('error', (error: unknown) => reject(new Error(`cannot connect to the system D-Bus at ${address}`, { cause: error })));
    setTimeout(() => reject(new Error(`no answer from ${service} on the system D-Bus at ${address} within 15 s`)), 15_000).unref();
  });
  failed.catch(() => undefined); // observed by the race below; unhandled only once it has lost
  bus.on('error', (error: unknown) => log.warn({ err: error }, 'system D-Bus connection error'));
  try {
    return { bus, object: await Promise.race([bus.getProxyObject(service, path), failed]) };
  } catch (error) {
    bus.disconnect();
    throw error;
  }
}

/** The D-Bus error name of a failed call (e.g. org.freedesktop.systemd1.NoSuchUnit). */
export const dbusErrorName = (error: unknown): string | undefined => (error && typeof error === 'object' && 'type' in error && typeof error.type === 'string' ? error.type : undefined);
