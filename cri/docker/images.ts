/**
 * ImageService over Docker. The agent decides whether to pull (imagePullPolicy) and passes the
 * credentials it found in imagePullSecrets (kubelet pkg/credentialprovider: a dockerconfigjson
 * entry → AuthConfig). Pull failures carry reason ErrImagePull (InvalidImageName for a bad
 * reference), the waiting reasons the kubelet reports (pkg/kubelet/images/types.go); backing
 * off into ImagePullBackOff is the agent's business.
 */
import type Docker from 'dockerode';
import { CriError, nowNs, type AuthConfig, type FilesystemUsage, type Image, type ImageFilter, type ImageSpec } from '../runtime.js';
import type { RuntimeContext } from './context.js';
import { criError, dockerMessage, dockerStatus, isNotFound } from './errors.js';

/** "busybox" → "busybox:latest"; digests and explicit tags are kept. */
export function normalizeImageRef(ref: string): string {
  const trimmed = ref.trim();
  if (trimmed.includes('@')) return trimmed;
  const lastSlash = trimmed.lastIndexOf('/');
  return trimmed.lastIndexOf(':') > lastSlash ? trimmed : `${trimmed}:latest`;
}

/** CRI AuthConfig → Docker's X-Registry-Auth object (auth "user:pass" base64 is split). */
export function dockerAuth(auth: AuthConfig | undefined, ref: string): Record<string, string> | undefined {
  if (!auth) return undefined;
  let { username, password } = auth;
  if (!username && auth.auth) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
  }
  const firstPart = ref.split('/')[0] ?? '';
  const registry = ref.includes('/') && /[.:]|^localhost$/.test(firstPart) ? firstPart : 'https://index.docker.io/v1/';
  const result: Record<string, string> = { serveraddress: auth.serverAddress || registry };
  if (username) result.username = username;
  if (password) result.password = password;
  if (auth.identityToken) result.identitytoken = auth.identityToken;
  if (auth.registryToken) result.registrytoken = auth.registryToken;
  return result;
}

function toImage(info: Docker.ImageInspectInfo): Image {
  const user = info.Config?.User ?? '';
  const uidText = user.split(':')[0] ?? '';
  const numeric = /^\d+$/.test(uidText);
  return {
    id: info.Id,
    repoTags: info.RepoTags ?? [],
    repoDigests: info.RepoDigests ?? [],
    size: info.Size,
    ...(numeric ? { uid: Number(uidText) } : {}),
    username: numeric ? '' : uidText,
    pinned: false,
  };
}

export class ImageManager {
  constructor(private readonly context: RuntimeContext) {}

  async status(image: ImageSpec): Promise<Image | undefined> {
    try {
      return toImage(await this.context.docker.getImage(normalizeImageRef(image.image)).inspect());
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw criError(`failed to inspect image "${image.image}"`, error, { image: image.image });
    }
  }

  async list(filter: ImageFilter = {}): Promise<Image[]> {
    if (filter.image?.image) {
      const found = await this.status(filter.image);
      return found ? [found] : [];
    }
    try {
      const infos = await this.context.docker.listImages();
      return infos.map((info) => ({ id: info.Id, repoTags: info.RepoTags ?? [], repoDigests: info.RepoDigests ?? [], size: info.Size, username: '', pinned: false }));
    } catch (error) {
      throw criError('failed to list images', error);
    }
  }

  async pull(image: ImageSpec, auth?: AuthConfig): Promise<string> {
    const ref = normalizeImageRef(image.image);
    if (!ref || /\s/.test(ref)) throw new CriError(`invalid image name "${image.image}"`, { code: 'InvalidArgument', image: image.image, reason: 'InvalidImageName' });
    const log = this.context.log.child({ image: ref });
    const started = Date.now();
    try {
      const options: Record<string, unknown> = {};
      const authconfig = dockerAuth(auth, ref);
      if (authconfig) options.authconfig = authconfig;
      const stream = await this.context.docker.pull(ref, options);
      let lastStatus = '';
      await new Promise<void>((resolve, reject) => {
        this.context.docker.modem.followProgress(
          stream,
          (error: Error | null, output: Array<{ error?: string }>) => {
            const failed = error ?? output?.find((event) => event.error);
            if (failed) reject(failed instanceof Error ? failed : new Error(failed.error));
            else resolve();
          },
          (event: { status?: string; id?: string }) => {
            if (event.status && event.status !== lastStatus) {
              lastStatus = event.status;
              log.debug({ status: event.status, layer: event.id }, 'image pull progress');
            }
          },
        );
      });
    } catch (error) {
      const invalid = dockerStatus(error) === 400 || /invalid reference format/i.test(dockerMessage(error));
      throw criError(`failed to pull image "${ref}"`, error, { image: ref, reason: invalid ? 'InvalidImageName' : 'ErrImagePull' });
    }
    const pulled = await this.status({ image: ref });
    if (!pulled) throw new CriError(`failed to pull image "${ref}": not present after the pull`, { image: ref, reason: 'ErrImagePull' });
    log.info({ ms: Date.now() - started, id: pulled.id }, 'image pulled');
    return pulled.id;
  }

  async remove(image: ImageSpec): Promise<void> {
    try {
      await this.context.docker.getImage(normalizeImageRef(image.image)).remove();
    } catch (error) {
      if (!isNotFound(error)) throw criError(`failed to remove image "${image.image}"`, error, { image: image.image });
    }
  }

  async fsInfo(): Promise<FilesystemUsage[]> {
    try {
      const [info, df] = await Promise.all([this.context.docker.info() as Promise<{ DockerRootDir?: string }>, this.diskUsage()]);
      return [{ timestamp: nowNs(), fsId: { mountpoint: info.DockerRootDir ?? '/var/lib/docker' }, usedBytes: df.LayersSize ?? 0 }];
    } catch (error) {
      throw criError('failed to get image filesystem usage', error);
    }
  }

  /**
   * GET /system/df. Docker Engine 20.10 refuses a second concurrent call with 500 "a disk usage
   * operation is already running" (engines with moby#42715 share the running one instead); several
   * agents on one engine (or an operator's `docker system df`) collide, so a bounded retry waits.
   */
  private async diskUsage(): Promise<{ LayersSize?: number }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return (await this.context.docker.df()) as { LayersSize?: number };
      } catch (error) {
        if (attempt >= 5 || !/disk usage operation is already running/i.test(dockerMessage(error))) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
      }
    }
  }

  async rootDir(): Promise<string> {
    const info = (await this.context.docker.info()) as { DockerRootDir?: string };
    return info.DockerRootDir ?? '/var/lib/docker';
  }
}
