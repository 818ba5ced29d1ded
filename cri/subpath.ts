/**
 * volumeMounts[].subPath → the host path to bind-mount (the kubelet does this before it calls
 * CreateContainer; pkg/volume/util/subpath). Rules matched:
 * - subPath must be relative and must not contain ".." (API validation);
 * - a missing subPath is created as a directory (0750, like the kubelet);
 * - after resolving symlinks the result must stay inside the volume (CVE-2017-1002101: a
 *   container must not escape its volume through a symlink it planted).
 * The kubelet closes the check/use race with a bind mount of an fd; here the resolved real
 * path is what gets mounted, which narrows but does not close it (documented limitation).
 */
import { mkdir, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { onErrno } from '../lib/errors.js';

class SubPathError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SubPathError';
  }
}

export async function resolveSubPath(volumePath: string, subPath: string): Promise<string> {
  if (!subPath) return volumePath;
  if (isAbsolute(subPath) || subPath.split(/[/\\]/).includes('..')) {
    throw new SubPathError(`subPath "${subPath}" must be a relative path without ".."`);
  }
  let base: string;
  try {
    base = await realpath(volumePath);
  } catch (error) {
    throw new SubPathError(`volume path "${volumePath}" does not exist`, { cause: error });
  }
  const wanted = join(base, subPath);
  const within = (path: string): boolean => {
    const rel = relative(base, path);
    return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
  };
  // Absent (ENOENT, or a file on the way: ENOTDIR): created below after the ancestor check.
  let resolved = await realpath(wanted).catch(onErrno(['ENOENT', 'ENOTDIR'], undefined));
  if (resolved === undefined) {
    // Check the deepest existing ancestor before creating anything, so that a symlink on the
    // way cannot make us create directories outside the volume.
    let ancestor = dirname(wanted);
    let real = await realpath(ancestor).catch(onErrno(['ENOENT', 'ENOTDIR'], undefined));
    while (real === undefined && ancestor !== base && ancestor !== dirname(ancestor)) {
      ancestor = dirname(ancestor);
      real = await realpath(ancestor).catch(onErrno(['ENOENT', 'ENOTDIR'], undefined));
    }
    if (real === undefined || !within(real)) throw new SubPathError(`subPath "${subPath}" resolves outside its volume`);
    await mkdir(wanted, { recursive: true, mode: 0o750 }).catch((error: unknown) => {
      throw new SubPathError(`cannot create subPath "${subPath}" in "${volumePath}"`, { cause: error });
    });
    resolved = await realpath(wanted);
  }
  if (!within(resolved)) throw new SubPathError(`subPath "${subPath}" resolves outside its volume ("${resolved}")`);
  return resolved;
}
