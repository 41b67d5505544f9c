// Bridge/vxlan FDB over rtnetlink, as iproute2's `bridge fdb` does it, without N-API types so other
// parts of the addon can use it. One NETLINK_ROUTE socket per process, opened on first use in the
// network namespace the process is in then, and guarded by a mutex (worker threads share it).
#pragma once
#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <vector>

namespace weave::rtnl {

enum class FdbCmd { Replace, Append, Del };

struct FdbReq {
  FdbCmd cmd;
  int ifindex;
  uint8_t mac[6];
  bool hasDst;
  in_addr dst;
  bool master;  // NTF_MASTER (the bridge's entry for a port) rather than NTF_SELF (the device's own)
};

// Per request: err 0 on success, else a positive errno and the kernel's extended-ack text, if any.
struct Result {
  int err;
  std::string detail;
};

struct FdbRow {
  int ifindex;
  uint8_t mac[6];
  std::string dst;  // empty when the entry has no NDA_DST
  bool master;      // the bridge's entry (NDA_MASTER), not the device's own (NTF_SELF)
  uint16_t state;   // NUD_*
  int vlan;         // -1 without NDA_VLAN
};

// Sends all requests (a bounded number per sendmsg) and reads every ack. Throws std::runtime_error
// only when no netlink socket can be opened.
std::vector<Result> FdbApply(const std::vector<FdbReq>& reqs);

// RTM_GETNEIGH dump of AF_BRIDGE entries whose ndm_ifindex is `ifindex`. Throws on failure.
std::vector<FdbRow> FdbDump(int ifindex);

// "ENODEV" for ENODEV; "errno N" for names it does not know.
std::string ErrnoName(int err);

}  // namespace weave::rtnl
