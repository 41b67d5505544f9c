// JavaScript bindings of the native sleeve datapath (sleeve-engine.h): the Sleeve class.
#pragma once
#include <napi.h>

namespace weave::sleeve {
Napi::Function Exports(Napi::Env env);
}
