// splitmix64: the same numbers on every platform (std's distributions are not), and the command
// line the native test programs share, so a seed means the same cases everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
  }
  size_t Below(size_t n) { return n ? Next() % n : 0; }
  size_t Range(size_t lo, size_t hi) { return lo + Below(hi - lo + 1); }
  bool Chance(unsigned pct) { return Below(100) < pct; }
  void Fill(uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = uint8_t(Next());
  }
};

// A case's own numbers: the same for (seed, case) whatever ran before it, so one case reruns alone.
inline Rng CaseRng(uint64_t seed, size_t n) {
  Rng r{seed * 0x9e3779b97f4a7c15 ^ n};
  r.Next();
  return r;
}

// The command line of every native test program: SEED ITERATIONS | SEED --case N | --bench.
struct Cases {
  bool bench = false;
  uint64_t seed = 0;
  size_t from = 0, to = 0;
};

// False (after printing the usage) when the arguments are none of those.
inline bool ParseCases(int argc, char** argv, const char* program, Cases* c) {
  if (argc == 2 && !strcmp(argv[1], "--bench")) return c->bench = true;
  const bool one = argc == 4 && !strcmp(argv[2], "--case");
  if (argc != 3 && !one) {
    fprintf(stderr, "usage: %s SEED ITERATIONS | SEED --case N | --bench\n", program);
    return false;
  }
  c->seed = strtoull(argv[1], nullptr, 10);
  c->from = one ? strtoull(argv[3], nullptr, 10) : 0;
  c->to = one ? c->from + 1 : strtoull(argv[2], nullptr, 10);
  return true;
}
