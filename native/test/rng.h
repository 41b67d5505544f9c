// splitmix64: the same numbers on every platform (std's distributions are not). Shared by the
// native test programs, so a seed means the same cases everywhere.
#pragma once

#include <cstddef>
#include <cstdint>

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
