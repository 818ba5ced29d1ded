/**
 * The executable that `knode install-cni` puts into the CNI bin dir. Perl (always present on
 * Debian as perl-base) starts in ~2 ms, so the fast path through the daemon's socket stays under
 * the reference plugins' time; without a daemon it pipes the request to this checkout's Node
 * plugin entry. See cni/plugin-server.ts for the wire format.
 */
import { writeFileAtomic } from '../lib/fs.js';
import { cniSocketName, defaultCniSocket } from './plugin-server.js';

interface LauncherOptions {
  node: string;
  /** The plugin entry script (dist/cni/plugin-main.js or a bundle). */
  entry: string;
  /**
   * The daemon's socket when the netconf names no `subnetFile` (default: beside flannel's default
   * subnet file). A netconf `subnetFile` wins over it, KNODE_CNI_SOCKET over both.
   */
  socket?: string;
}

const quote = (text: string) => `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/**
 * Perl for cniSocketFor (cni/plugin-server.ts), the overlay daemon's rule: `knode-cni.sock` in the
 * directory of the netconf's top-level `subnetFile` (a JSON string: \" \\ \/ escapes are decoded;
 * a value with other escapes is not derived). Sets $sock and $from (said when the fast path is off).
 */
function socketRule(fallback: string): string {
  return String.raw`my ($sock, $from);
if (defined $ENV{KNODE_CNI_SOCKET}) { $sock = $ENV{KNODE_CNI_SOCKET}; $from = 'from KNODE_CNI_SOCKET'; }
elsif ($in =~ /"subnetFile"\s*:\s*"((?:[^"\\]|\\["\\\/])*)"/) {
  (my $sf = $1) =~ s/\\(.)/$1/g;
  ($sock = $sf) =~ s{[^/]*\z}{};
  $sock = ($sock eq '' ? './' : $sock) . ${quote(cniSocketName)};
  $from = "beside subnetFile $sf";
} else { $sock = ${quote(fallback)}; $from = 'the default, no subnetFile in the netconf'; }
`;
}

function launcherScript(options: LauncherOptions): string {
  return `#!/usr/bin/perl
# knode CNI plugin launcher (written by knode install-cni; see cni/launcher.ts).
# No modules on purpose: loading Socket/IO::Socket costs more than the whole fast path.
# socket(2) constants are Linux's: AF_UNIX = 1, SOCK_STREAM = 1.
my $node = ${quote(options.node)};
my $entry = ${quote(options.entry)};
binmode STDIN; binmode STDOUT;
my $in = -t STDIN ? '' : do { local $/; <STDIN> };
$in = '' unless defined $in;
${socketRule(options.socket ?? defaultCniSocket)}if (defined $ENV{CNI_COMMAND} && !-S $sock) {
  # The runtime logs a plugin's stderr: say why this call takes the slow path.
  print STDERR "knode: no overlay daemon socket at $sock ($from): ", (-e $sock ? 'not a socket' : 'absent'), "; running in-process\\n";
} elsif (defined $ENV{CNI_COMMAND}) {
  my $s;
  if (socket($s, 1, 1, 0) && connect($s, pack('S', 1) . $sock . "\\0")) {
    binmode $s;
    my $ino = (stat('/proc/self/ns/net'))[1];
    my $req = "KNODE-CNI 1 $ino\\n";
    for my $k (sort grep { /^CNI_/ } keys %ENV) { my $v = $ENV{$k}; $v =~ s/\\n/ /g; $req .= "$k=$v\\n"; }
    $req .= "\\n" . $in;
    while (length $req) { my $n = syswrite($s, $req); last unless defined $n && $n > 0; substr($req, 0, $n) = ''; }
    shutdown($s, 1);
    my ($resp, $buf) = ('', '');
    while (sysread($s, $buf, 65536)) { $resp .= $buf; }
    if ($resp =~ s/^(\\d+)\\n//) { print $resp; exit($1); }
    print STDERR "knode: daemon at $sock answered ", substr($resp, 0, 40), "; running in-process\\n";
  } else {
    print STDERR "knode: daemon at $sock unreachable ($!); running in-process\\n";
  }
}
open(my $p, '|-', $node, $entry) or die "knode: cannot run $node: $!\\n";
binmode $p; print $p $in; close($p);
exit($? & 127 ? 1 : $? >> 8);
`;
}


/** Writes the launcher atomically with mode 0755. */
export function writeLauncher(file: string, options: LauncherOptions): void {
  writeFileAtomic(file, launcherScript(options), { mode: 0o755 });
}
