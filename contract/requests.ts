// Request and response bodies of the HTTP API's commands.

/**
 * POST /attach: addresses as Weave writes them (CIDR, net:CIDR, net:default); none means one from the default subnet.
 */
export interface AttachRequest {
  target: string;
  cidrs?: string[];
  mac?: string;
}
export interface AttachResult {
  target: string;
  mac: string;
  cidrs: string[];
}
export interface DetachResult {
  mac?: string;
  cidrs: string[];
}
/** POST /ps: one row per attachment (the host's exposed address first). */
export interface PsRow {
  id: string;
  mac: string;
  cidrs: string[];
}
export interface ExposeResult {
  cidrs: string[];
}
/** POST /connect and /forget answer with the targets now. */
export interface TargetsResult {
  targets: string[];
}
/** POST /run: `weave run`'s addresses and docker run arguments; answers with the container id. */
/** `env`: NAME=VALUE of the caller's variables that `-e NAME` passes on. */
export interface RunRequest {
  cidrs?: string[];
  args: string[];
  env?: string[];
}
export interface RunResult {
  id: string;
}
export interface RmpeerResult {
  peer: string;
  addresses: number;
}
export interface ResetResult {
  heir?: string;
}

/** The CNI plugin's calls (POST /cni/add, /cni/del, /cni/check): one container's interface in a namespace. */
export interface CniRequest {
  containerId: string;
  netns: string;
  ifname: string;
}
/** What ADD made: the interface, its addresses (CIDR) and the gateway its default route goes through. */
export interface CniAddResult {
  ifname: string;
  mac: string;
  netns: string;
  cidrs: string[];
  gateway: string;
  mtu: number;
}
/** CHECK: what is there now, and what IPAM holds for the container. */
export interface CniCheckResult {
  mac?: string;
  cidrs: string[];
  held: string[];
}
/**
 * POST /cni/gc: the attachments the runtime still knows, as CONTAINERID:IFNAME; every other CNI address here is
 * released.
 */
export interface CniGcRequest {
  valid: string[];
}

/** POST /policy/apply: a YAML file of NetworkPolicies (`file` names it in messages); answers the namespace/names applied. */
export interface PolicyApplyRequest {
  file: string;
  yaml: string;
  namespace?: string;
}
export interface PolicyApplyResult {
  applied: string[];
}
/** GET /policy: one row per policy in force (namespace/name). */
export interface PolicyRow {
  name: string;
  types: string[];
  rules: number;
  /** This host's containers it isolates. */
  selectedHere: number;
  /** Packets it dropped on this host. */
  dropped: number;
}
/** POST /policy/why: which rule allows or drops a new flow (src, dst: addresses or container names; port: PORT[/PROTO]). */
export interface PolicyWhyRequest {
  src: string;
  dst: string;
  port: string;
}
export interface PolicyWhyDirection {
  verdict: 'open' | 'allow' | 'drop';
  isolatedBy: string[];
  rule?: string;
}
export interface PolicyWhy {
  src: string;
  dst: string;
  port: number;
  protocol: string;
  verdict: 'open' | 'allow' | 'drop';
  egress: PolicyWhyDirection;
  ingress: PolicyWhyDirection;
  text: string;
}
