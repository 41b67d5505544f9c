// JavaScript bindings of the rtnetlink FDB code (rtnl.h): fdbApply, fdbList, ifindex.
#pragma once
#include <napi.h>

namespace weave::netlink {
Napi::Object Exports(Napi::Env env);
}
