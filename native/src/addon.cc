// The weave_native addon: one export per part (`netlink`, the `Sleeve` datapath), so the
// TypeScript loaders stay independent of one another.
#include <napi.h>

#include "netlink.h"
#include "seal.h"
#include "sleeve.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("netlink", weave::netlink::Exports(env));
  exports.Set("Sleeve", weave::sleeve::Exports(env));
  exports.Set("aesGcmHardware", Napi::Boolean::New(env, weave::seal::HasAesGcmHardware()));
  return exports;
}

NODE_API_MODULE(weave_native, Init)
