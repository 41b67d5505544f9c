// JavaScript side of rtnl.h. Every argument is checked here before anything reaches the kernel: a
// bad op throws a one-line TypeError and no op of that batch is sent.
#include "netlink.h"

#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <net/if.h>

#include <cstdio>
#include <cstring>

#include "rtnl.h"

namespace weave::netlink {
namespace {

// A user's string inside an error message: quoted, at most 40 characters, never a line break.
std::string Quote(const std::string& s) {
  std::string q = "\"";
  for (size_t i = 0; i < s.size() && i < 40; i++) {
    unsigned char c = s[i];
    char esc[8];
    snprintf(esc, sizeof esc, "\\x%02x", c);
    q += (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? esc : std::string(1, c);
  }
  return q + (s.size() > 40 ? "\"..." : "\"");
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Exactly aa:bb:cc:dd:ee:ff (either case): stricter than iproute2's sscanf, which takes "1:2:3:4:5:6x".
bool ParseMac(const std::string& s, uint8_t mac[6]) {
  if (s.size() != 17) return false;
  for (int i = 0; i < 6; i++) {
    int hi = Hex(s[i * 3]), lo = Hex(s[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && s[i * 3 + 2] != ':')) return false;
    mac[i] = hi << 4 | lo;
  }
  return true;
}

std::string FormatMac(const uint8_t mac[6]) {
  char s[18];
  snprintf(s, sizeof s, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return s;
}

int IfindexArg(const Napi::Value& v, const std::string& what) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : 0;
  if (!(d >= 1 && d <= 0x7fffffff && d == static_cast<int>(d)))
    throw Napi::TypeError::New(v.Env(), what + ": want an interface index (a positive integer)");
  return static_cast<int>(d);
}

rtnl::FdbReq ParseOp(const Napi::Value& v, size_t i) {
  Napi::Env env = v.Env();
  std::string at = "fdbApply: ops[" + std::to_string(i) + "]";
  if (!v.IsObject()) throw Napi::TypeError::New(env, at + ": want an object");
  Napi::Object o = v.As<Napi::Object>();
  rtnl::FdbReq r{};
  Napi::Value op = o.Get("op"), mac = o.Get("mac"), dst = o.Get("dst"), master = o.Get("master");
  std::string name = op.IsString() ? op.As<Napi::String>().Utf8Value() : "";
  if (name == "replace") r.cmd = rtnl::FdbCmd::Replace;
  else if (name == "append") r.cmd = rtnl::FdbCmd::Append;
  else if (name == "del") r.cmd = rtnl::FdbCmd::Del;
  else throw Napi::TypeError::New(env, at + ".op: want 'replace', 'append' or 'del', not " + Quote(name));
  r.ifindex = IfindexArg(o.Get("ifindex"), at + ".ifindex");
  std::string m = mac.IsString() ? mac.As<Napi::String>().Utf8Value() : "";
  if (!ParseMac(m, r.mac)) throw Napi::TypeError::New(env, at + ".mac: bad MAC " + Quote(m) + " (want aa:bb:cc:dd:ee:ff)");
  if (!dst.IsUndefined() && !dst.IsNull()) {
    std::string d = dst.IsString() ? dst.As<Napi::String>().Utf8Value() : "";
    if (d.find('\0') != std::string::npos || inet_pton(AF_INET, d.c_str(), &r.dst) != 1)
      throw Napi::TypeError::New(env, at + ".dst: bad IPv4 address " + Quote(d));
    r.hasDst = true;
  }
  if (!master.IsUndefined() && !master.IsBoolean()) throw Napi::TypeError::New(env, at + ".master: want a boolean");
  r.master = master.IsBoolean() && master.As<Napi::Boolean>().Value();
  return r;
}

// "replace aa:bb:cc:dd:ee:ff dev 12 dst 10.0.0.1: No such device (ENODEV): unknown ifindex"
std::string Describe(const rtnl::FdbReq& r, const rtnl::Result& res) {
  static const char* verbs[] = {"replace", "append", "del"};
  std::string s = std::string(verbs[static_cast<int>(r.cmd)]) + " " + FormatMac(r.mac) + " dev " + std::to_string(r.ifindex);
  char ip[INET_ADDRSTRLEN];
  if (r.hasDst && inet_ntop(AF_INET, &r.dst, ip, sizeof ip)) s += std::string(" dst ") + ip;
  if (r.master) s += " master";
  s += std::string(": ") + strerror(res.err) + " (" + rtnl::ErrnoName(res.err) + ")";
  if (!res.detail.empty()) s += ": " + res.detail;
  return s;
}

Napi::Value FdbApply(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw Napi::TypeError::New(env, "fdbApply: want an array of ops");
  Napi::Array ops = info[0].As<Napi::Array>();
  std::vector<rtnl::FdbReq> reqs;
  reqs.reserve(ops.Length());
  for (uint32_t i = 0; i < ops.Length(); i++) reqs.push_back(ParseOp(ops.Get(i), i));
  std::vector<rtnl::Result> results = rtnl::FdbApply(reqs);
  Napi::Array out = Napi::Array::New(env, results.size());
  for (uint32_t i = 0; i < results.size(); i++)
    out.Set(i, results[i].err == 0 ? env.Null() : Napi::String::New(env, Describe(reqs[i], results[i])));
  return out;
}

Napi::Value FdbList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = IfindexArg(info[0], "fdbList: ifindex");
  std::vector<rtnl::FdbRow> rows = rtnl::FdbDump(ifindex);
  Napi::Array out = Napi::Array::New(env, rows.size());
  for (uint32_t i = 0; i < rows.size(); i++) {
    const rtnl::FdbRow& r = rows[i];
    Napi::Object e = Napi::Object::New(env);
    e.Set("mac", FormatMac(r.mac));
    e.Set("ifindex", r.ifindex);
    if (!r.dst.empty()) e.Set("dst", r.dst);
    e.Set("master", r.master);
    e.Set("permanent", (r.state & NUD_PERMANENT) != 0);
    e.Set("static", (r.state & NUD_PERMANENT) == 0 && (r.state & NUD_NOARP) != 0);  // as iproute2 prints it
    if (r.vlan >= 0) e.Set("vlan", r.vlan);
    out.Set(i, e);
  }
  return out;
}

Napi::Value Ifindex(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (name.empty() || name.size() >= IFNAMSIZ || name.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, "ifindex: bad interface name " + Quote(name));
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) throw Napi::Error::New(env, "ifindex: no interface " + Quote(name) + " in this network namespace");
  return Napi::Number::New(env, idx);
}

}  // namespace

Napi::Object Exports(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("fdbApply", Napi::Function::New(env, FdbApply, "fdbApply"));
  o.Set("fdbList", Napi::Function::New(env, FdbList, "fdbList"));
  o.Set("ifindex", Napi::Function::New(env, Ifindex, "ifindex"));
  return o;
}

}  // namespace weave::netlink
