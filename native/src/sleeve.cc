// JavaScript side of the native sleeve (sleeve-engine.h): `new Sleeve({tap, port, vni, mtu})` opens
// the devices; the datapath threads call back (through a thread-safe function, never per frame)
// only to say the upcall queue has something.
#include "sleeve.h"

#include <arpa/inet.h>

#include <cstring>
#include <memory>

#include "sleeve-engine.h"

namespace weave::sleeve {
namespace {

uint32_t Number(const Napi::Value& v, const char* what, double max) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d <= max) || d != static_cast<uint64_t>(d)) throw Napi::TypeError::New(v.Env(), std::string(what) + ": want an integer from 0 to " + std::to_string(static_cast<uint64_t>(max)));
  return static_cast<uint32_t>(d);
}

uint64_t MacArg(const Napi::Value& v) {
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(d >= 0 && d < 281474976710656.0) || d != static_cast<uint64_t>(d)) throw Napi::TypeError::New(v.Env(), "mac: want a 48-bit number");
  return static_cast<uint64_t>(d);
}

// Addresses cross as numbers in the order one reads them (a.b.c.d is a<<24|...).
uint32_t IpArg(const Napi::Value& v) { return htonl(Number(v, "ip", 4294967295.0)); }

Napi::Object TrafficObject(Napi::Env env, const Traffic& t, const char* count = "frames") {
  Napi::Object o = Napi::Object::New(env);
  o.Set(count, static_cast<double>(t.frames.load()));
  o.Set("bytes", static_cast<double>(t.bytes.load()));
  return o;
}

class Sleeve : public Napi::ObjectWrap<Sleeve> {
 public:
  static Napi::Function Class(Napi::Env env) {
    return DefineClass(env, "Sleeve", {
      InstanceMethod("start", &Sleeve::Start), InstanceMethod("stop", &Sleeve::Stop),
      InstanceMethod("routeLocal", &Sleeve::RouteLocal), InstanceMethod("routePeer", &Sleeve::RoutePeer),
      InstanceMethod("unroute", &Sleeve::Unroute), InstanceMethod("setPeers", &Sleeve::SetPeers),
      InstanceMethod("secure", &Sleeve::Secure),
      InstanceMethod("inject", &Sleeve::Inject), InstanceMethod("send", &Sleeve::Send),
      InstanceMethod("drain", &Sleeve::Drain), InstanceMethod("stats", &Sleeve::Stats),
    });
  }

  explicit Sleeve(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sleeve>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "Sleeve: want {tap, port, vni, mtu}");
    Napi::Object o = info[0].As<Napi::Object>();
    Napi::Value tap = o.Get("tap");
    if (!tap.IsString()) throw Napi::TypeError::New(env, "tap: want a device name");
    Engine::Config cfg{tap.As<Napi::String>().Utf8Value(), static_cast<uint16_t>(Number(o.Get("port"), "port", 65535)),
                       Number(o.Get("vni"), "vni", 16777215), Number(o.Get("mtu"), "mtu", 65535), o.Get("encrypt").ToBoolean().Value()};
    engine_ = std::make_unique<Engine>(cfg);
  }

  ~Sleeve() override { Release(); }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "start: want a function");
    if (started_) throw Napi::Error::New(info.Env(), "start: already started");
    tsfn_ = Napi::ThreadSafeFunction::New(info.Env(), info[0].As<Napi::Function>(), "weave-sleeve", 0, 1);
    tsfn_.Unref(info.Env());  // the router's own handles keep it running, not this
    started_ = true;
    engine_->Start([this] { tsfn_.NonBlockingCall(); });
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) { Release(); return info.Env().Undefined(); }

  void Release() {
    if (!engine_) return;
    engine_->Stop();
    if (started_) tsfn_.Release();
    engine_.reset();  // closes the TAP (the kernel removes it) and the socket
  }

  Engine& engine(const Napi::Env& env) {
    if (!engine_) throw Napi::Error::New(env, "the sleeve is stopped");
    return *engine_;
  }

  Napi::Value RouteLocal(const Napi::CallbackInfo& info) {
    engine(info.Env()).RouteLocal(MacArg(info[0]));
    return info.Env().Undefined();
  }

  Napi::Value RoutePeer(const Napi::CallbackInfo& info) {
    engine(info.Env()).RoutePeer(MacArg(info[0]), IpArg(info[1]), Number(info[2], "port", 65535), Number(info[3], "mtu", 65535));
    return info.Env().Undefined();
  }

  Napi::Value Unroute(const Napi::CallbackInfo& info) {
    engine(info.Env()).Unroute(MacArg(info[0]));
    return info.Env().Undefined();
  }

  Napi::Value SetPeers(const Napi::CallbackInfo& info) {
    if (!info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "setPeers: want an array of addresses");
    Napi::Array a = info[0].As<Napi::Array>();
    std::vector<uint32_t> ips;
    for (uint32_t i = 0; i < a.Length(); i++) ips.push_back(IpArg(a.Get(i)));
    engine(info.Env()).SetPeers(ips);
    return info.Env().Undefined();
  }

  // secure(ip, null | {plain: true} | {cipher: 'aes-256-gcm' | 'chacha20-poly1305', tx: {id, key}, rx: [{id, key}]})
  Napi::Value Secure(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    uint32_t ip = IpArg(info[0]);
    if (info[1].IsNull() || info[1].IsUndefined()) {
      engine(env).Secure(ip, nullptr);
      return env.Undefined();
    }
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "secure: want null or keys");
    Napi::Object o = info[1].As<Napi::Object>();
    SecuritySpec spec;
    spec.plain = o.Get("plain").ToBoolean().Value();
    if (!spec.plain) {
      std::string cipher = o.Get("cipher").IsString() ? o.Get("cipher").As<Napi::String>().Utf8Value() : "";
      if (cipher == "aes-256-gcm") spec.cipher = seal::Cipher::kAes256Gcm;
      else if (cipher == "chacha20-poly1305") spec.cipher = seal::Cipher::kChaCha20Poly1305;
      else throw Napi::TypeError::New(env, "secure: cipher must be aes-256-gcm or chacha20-poly1305");
      spec.tx = Key(o.Get("tx"));
      if (!o.Get("rx").IsArray()) throw Napi::TypeError::New(env, "secure: rx: want an array of keys");
      Napi::Array rx = o.Get("rx").As<Napi::Array>();
      for (uint32_t i = 0; i < rx.Length(); i++) spec.rx.push_back(Key(rx.Get(i)));
    }
    engine(env).Secure(ip, &spec);
    return env.Undefined();
  }

  static KeySpec Key(const Napi::Value& v) {
    Napi::Env env = v.Env();
    if (!v.IsObject()) throw Napi::TypeError::New(env, "secure: a key is {id, key}");
    Napi::Object o = v.As<Napi::Object>();
    KeySpec k{static_cast<uint8_t>(Number(o.Get("id"), "key id", 255)), {}};
    Napi::Value key = o.Get("key");
    if (!key.IsBuffer() || key.As<Napi::Buffer<uint8_t>>().Length() != sizeof k.key) throw Napi::TypeError::New(env, "secure: a key is 32 bytes");
    memcpy(k.key, key.As<Napi::Buffer<uint8_t>>().Data(), sizeof k.key);
    return k;
  }

  Napi::Value Inject(const Napi::CallbackInfo& info) {
    if (!info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "inject: want a Buffer");
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    return Napi::Boolean::New(info.Env(), engine(info.Env()).Inject(b.Data(), b.Length()));
  }

  Napi::Value Send(const Napi::CallbackInfo& info) {
    if (!info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), "send: want a Buffer");
    auto b = info[0].As<Napi::Buffer<uint8_t>>();
    return Napi::Boolean::New(info.Env(), engine(info.Env()).Send(b.Data(), b.Length(), IpArg(info[1]), Number(info[2], "port", 65535)));
  }

  Napi::Value Drain(const Napi::CallbackInfo& info) {
    std::vector<uint8_t> up = engine(info.Env()).Drain();
    if (up.empty()) return info.Env().Null();
    return Napi::Buffer<uint8_t>::Copy(info.Env(), up.data(), up.size());
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Engine& e = engine(env);
    const Counters& c = e.counters();
    Napi::Object o = Napi::Object::New(env);
    o.Set("captured", TrafficObject(env, c.captured));
    o.Set("injected", TrafficObject(env, c.injected));
    o.Set("sent", TrafficObject(env, c.sent, "datagrams"));
    o.Set("received", TrafficObject(env, c.received, "datagrams"));
    o.Set("upFrames", TrafficObject(env, c.upFrames));
    o.Set("upDatagrams", TrafficObject(env, c.upDatagrams, "datagrams"));
    o.Set("gsoSends", static_cast<double>(c.gsoSends.load()));
    o.Set("gsoWrites", static_cast<double>(c.gsoWrites.load()));
    Napi::Object dropped = Napi::Object::New(env);
    dropped.Set("malformed", static_cast<double>(c.malformed.load()));
    dropped.Set("send-failed", static_cast<double>(c.sendFailed.load()));
    dropped.Set("write-failed", static_cast<double>(c.writeFailed.load()));
    dropped.Set("queue-full", static_cast<double>(c.queueFull.load()));
    dropped.Set("no-key", static_cast<double>(c.noKey.load()));
    dropped.Set("unencrypted", static_cast<double>(c.unencrypted.load()));
    dropped.Set("auth", static_cast<double>(c.auth.load()));
    dropped.Set("replay", static_cast<double>(c.replay.load()));
    dropped.Set("too-old", static_cast<double>(c.tooOld.load()));
    dropped.Set("truncated", static_cast<double>(c.truncated.load()));
    o.Set("dropped", dropped);
    Napi::Object off = Napi::Object::New(env);
    off.Set("tso", e.tap().tso);
    off.Set("uso", e.tap().uso);
    off.Set("gro", e.udp().gro);
    off.Set("gsoSend", e.gsoSend());
    off.Set("gsoWrite", e.gsoWrite());
    o.Set("offloads", off);
    Napi::Array peers = Napi::Array::New(env);
    e.ForEachPeer([&](uint32_t ip, const PeerTraffic& t) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("ip", static_cast<double>(ntohl(ip)));
      p.Set("tx", TrafficObject(env, t.tx));
      p.Set("rx", TrafficObject(env, t.rx));
      peers.Set(peers.Length(), p);
    });
    o.Set("peers", peers);
    return o;
  }

  std::unique_ptr<Engine> engine_;
  Napi::ThreadSafeFunction tsfn_;
  bool started_ = false;
};

}  // namespace

Napi::Function Exports(Napi::Env env) { return Sleeve::Class(env); }

}  // namespace weave::sleeve
