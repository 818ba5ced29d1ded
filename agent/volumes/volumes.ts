/**
 * Pod volumes on the node, under <rootDir>/pods/<uid>/volumes/kubernetes.io~<type>/<name> as the
 * kubelet lays them out (pkg/kubelet/kubelet_getters.go getPodVolumeDir): emptyDir, hostPath
 * (with its type checks, docs "Volumes → hostPath"), and the file-projecting types configMap,
 * secret, downwardAPI and projected (items, keys, defaultMode/mode; a missing non-optional
 * object or key is an error; optional → empty). The file contents are computed purely
 * (`projectedFiles`); writing them is the thin part.
 */
import { chmod, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import type { V1Container, V1KeyToPath, V1Pod, V1Volume } from '@kubernetes/client-node';
import type { Mount } from '../../cri/runtime.js';
import { onErrno } from '../../lib/errors.js';
import { fieldRefValue, resourceFieldValue, type EnvContext, type EnvObjects } from '../pods/env.js';

export class VolumeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VolumeError';
  }
}

interface ProjectedFile {
  content: Buffer;
  mode: number;
}

function podDir(rootDir: string, uid: string): string {
  return join(rootDir, 'pods', uid);
}

function volumeKind(volume: V1Volume): string | undefined {
  if (volume.emptyDir) return 'empty-dir';
  if (volume.configMap) return 'configmap';
  if (volume.secret) return 'secret';
  if (volume.downwardAPI) return 'downward-api';
  if (volume.projected) return 'projected';
  return undefined;
}

function volumeDir(rootDir: string, uid: string, volume: V1Volume): string {
  const kind = volumeKind(volume);
  if (!kind) throw new VolumeError(`volume "${volume.name}" has no managed directory`);
  return join(podDir(rootDir, uid), 'volumes', `kubernetes.io~${kind}`, volume.name);
}

function safeRelative(path: string, what: string): string {
  const normal = normalize(path);
  if (isAbsolute(path) || normal.split('/').includes('..') || normal === '.' || path === '') throw new VolumeError(`${what}: path "${path}" must be relative and must not contain ".."`);
  return normal;
}

function keyed(
  entries: Record<string, Buffer>,
  items: V1KeyToPath[] | undefined,
  defaultMode: number,
  what: string,
  optional: boolean,
  out: Map<string, ProjectedFile>,
): void {
  if (!items?.length) {
    for (const [key, content] of Object.entries(entries)) out.set(safeRelative(key, what), { content, mode: defaultMode });
    return;
  }
  for (const item of items) {
    const content = entries[item.key];
    if (content === undefined) {
      if (optional) continue;
      throw new VolumeError(`${what}: key "${item.key}" not found`);
    }
    out.set(safeRelative(item.path, what), { content, mode: item.mode ?? defaultMode });
  }
}

function configMapEntries(objects: EnvObjects, name: string): Record<string, Buffer> | undefined {
  const cm = objects.configMap(name);
  if (!cm) return undefined;
  const entries: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(cm.data ?? {})) entries[k] = Buffer.from(v, 'utf8');
  for (const [k, v] of Object.entries(cm.binaryData ?? {})) entries[k] = Buffer.from(v, 'base64');
  return entries;
}

function secretEntries(objects: EnvObjects, name: string): Record<string, Buffer> | undefined {
  const secret = objects.secret(name);
  if (!secret) return undefined;
  const entries: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(secret.stringData ?? {})) entries[k] = Buffer.from(v, 'utf8');
  for (const [k, v] of Object.entries(secret.data ?? {})) entries[k] = Buffer.from(v, 'base64');
  return entries;
}

function downward(pod: V1Pod, items: NonNullable<V1Volume['downwardAPI']>['items'], mode: number, context: EnvContext, what: string, out: Map<string, ProjectedFile>): void {
  for (const item of items ?? []) {
    let value: string;
    if (item.fieldRef) value = fieldRefValue(pod, item.fieldRef.fieldPath, context);
    else if (item.resourceFieldRef) {
      const ref = item.resourceFieldRef;
      const container = (pod.spec?.containers ?? []).find((c) => c.name === ref.containerName);
      value = resourceFieldValue(container, ref.resource, ref.divisor as string | undefined, context);
    } else continue;
    out.set(safeRelative(item.path, what), { content: Buffer.from(value, 'utf8'), mode: item.mode ?? mode });
  }
}

/** The files of a configMap/secret/downwardAPI/projected volume (relative path → content). */
export function projectedFiles(pod: V1Pod, volume: V1Volume, objects: EnvObjects, context: EnvContext): Map<string, ProjectedFile> {
  const out = new Map<string, ProjectedFile>();
  const what = `volume "${volume.name}"`;
  if (volume.configMap) {
    const { name = '', items, defaultMode = 0o644, optional = false } = volume.configMap;
    const entries = configMapEntries(objects, name);
    if (!entries && !optional) throw new VolumeError(`${what}: configmap "${name}" not found`);
    keyed(entries ?? {}, items, defaultMode, what, optional, out);
  } else if (volume.secret) {
    const { secretName = '', items, defaultMode = 0o644, optional = false } = volume.secret;
    const entries = secretEntries(objects, secretName);
    if (!entries && !optional) throw new VolumeError(`${what}: secret "${secretName}" not found`);
    keyed(entries ?? {}, items, defaultMode, what, optional, out);
  } else if (volume.downwardAPI) {
    downward(pod, volume.downwardAPI.items, volume.downwardAPI.defaultMode ?? 0o644, context, what, out);
  } else if (volume.projected) {
    const mode = volume.projected.defaultMode ?? 0o644;
    for (const source of volume.projected.sources ?? []) {
      if (source.configMap) {
        const entries = configMapEntries(objects, source.configMap.name ?? '');
        if (!entries && !source.configMap.optional) throw new VolumeError(`${what}: configmap "${source.configMap.name}" not found`);
        keyed(entries ?? {}, source.configMap.items, mode, what, source.configMap.optional === true, out);
      } else if (source.secret) {
        const entries = secretEntries(objects, source.secret.name ?? '');
        if (!entries && !source.secret.optional) throw new VolumeError(`${what}: secret "${source.secret.name}" not found`);
        keyed(entries ?? {}, source.secret.items, mode, what, source.secret.optional === true, out);
      } else if (source.downwardAPI) {
        downward(pod, source.downwardAPI.items, mode, context, what, out);
      }
    }
  }
  return out;
}

async function writeProjected(dir: string, files: Map<string, ProjectedFile>): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  for (const [path, file] of files) {
    const target = join(dir, path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, file.content);
    await chmod(target, file.mode);
  }
  // Keys that disappeared from the object disappear from the volume.
  for (const entry of await readdir(dir)) {
    if (![...files.keys()].some((path) => path === entry || path.startsWith(`${entry}/`))) await rm(join(dir, entry), { recursive: true, force: true });
  }
}

async function ensureHostPath(volume: V1Volume): Promise<string> {
  const { path, type = '' } = volume.hostPath!;
  if (!isAbsolute(path)) throw new VolumeError(`volume "${volume.name}": hostPath "${path}" must be absolute`);
  // Absent: the type decides (…OrCreate creates it, the others fail below); any other failure is the pod's error.
  const info = await stat(path).catch(onErrno(['ENOENT'], undefined));
  const fail = (what: string) => new VolumeError(`volume "${volume.name}": hostPath type check failed: ${path} is not a ${what}`);
  switch (type) {
    case 'DirectoryOrCreate':
      if (!info) await mkdir(path, { recursive: true, mode: 0o755 });
      else if (!info.isDirectory()) throw fail('directory');
      break;
    case 'FileOrCreate':
      if (!info) {
        await mkdir(dirname(path), { recursive: true });
        await writeFile(path, '', { mode: 0o644 });
      } else if (!info.isFile()) throw fail('file');
      break;
    case 'Directory':
      if (!info?.isDirectory()) throw fail('directory');
      break;
    case 'File':
      if (!info?.isFile()) throw fail('file');
      break;
    case 'Socket':
      if (!info?.isSocket()) throw fail('socket');
      break;
    case 'CharDevice':
      if (!info?.isCharacterDevice()) throw fail('character device');
      break;
    case 'BlockDevice':
      if (!info?.isBlockDevice()) throw fail('block device');
      break;
    default:
      break;
  }
  return path;
}

/** Sets up every volume of the pod; returns volume name → host path. */
export async function setUpVolumes(pod: V1Pod, rootDir: string, objects: EnvObjects, context: EnvContext): Promise<Map<string, string>> {
  const uid = pod.metadata!.uid!;
  const paths = new Map<string, string>();
  for (const volume of pod.spec?.volumes ?? []) {
    if (volume.hostPath) {
      paths.set(volume.name, await ensureHostPath(volume));
    } else if (volume.emptyDir) {
      const dir = volumeDir(rootDir, uid, volume);
      await mkdir(dir, { recursive: true, mode: 0o777 });
      await chmod(dir, 0o777);
      paths.set(volume.name, dir);
    } else if (volumeKind(volume)) {
      const dir = volumeDir(rootDir, uid, volume);
      await writeProjected(dir, projectedFiles(pod, volume, objects, context));
      paths.set(volume.name, dir);
    } else {
      throw new VolumeError(`volume "${volume.name}": unsupported volume type (knode supports emptyDir, hostPath, configMap, secret, downwardAPI, projected)`);
    }
  }
  return paths;
}

/** The container's mounts (subPath resolved under the volume; ".." rejected). */
export function containerMounts(container: V1Container, volumes: ReadonlyMap<string, string>): Mount[] {
  return (container.volumeMounts ?? []).map((mount) => {
    const base = volumes.get(mount.name);
    if (!base) throw new VolumeError(`container "${container.name}": volumeMount "${mount.name}" refers to no volume`);
    const hostPath = mount.subPath ? join(base, safeRelative(mount.subPath, `volumeMount "${mount.name}" subPath`)) : base;
    return {
      containerPath: mount.mountPath,
      hostPath,
      readonly: mount.readOnly === true,
      propagation: mount.mountPropagation === 'Bidirectional' ? 'PROPAGATION_BIDIRECTIONAL' : mount.mountPropagation === 'HostToContainer' ? 'PROPAGATION_HOST_TO_CONTAINER' : 'PROPAGATION_PRIVATE',
    };
  });
}

/** Removes the pod's directory (volumes of a pod that is gone). */
export async function removePodDir(rootDir: string, uid: string): Promise<void> {
  if (!/^[A-Za-z0-9-_]+$/.test(uid)) throw new VolumeError(`refusing to remove pod directory of odd uid "${uid}"`);
  await rm(podDir(rootDir, uid), { recursive: true, force: true });
}
