/* apy: annual percentage yield from two index observations. Pure; no
 * I/O. Informational figures only (floating point never touches money).
 *
 *   apy = (index_now / index_then) ^ (365 days / elapsed) - 1
 *
 * i.e. the index's growth over the window, compounded to a year: 0.05 is
 * 5 % a year. Callers take index_then from the newest index_history row at
 * or before now - window (7 or 30 days), so elapsed >= window. */
#ifndef COFFER_APY_H
#define COFFER_APY_H

#include "u256.h"

#include <stdint.h>

#define APY_YEAR_SECONDS (365LL * 86400LL)
#define APY_WINDOW_7D (7LL * 86400LL)
#define APY_WINDOW_30D (30LL * 86400LL)

/* The APY between an index observed elapsed_s seconds ago (index_then) and
 * now (index_now). 0 when there is no such observation (index_then NULL or
 * zero) or elapsed_s <= 0; a falling index gives a negative figure. The
 * result is always finite (clamped to [-1, 1e6]). */
double apy_annualized(const u256 *index_now, const u256 *index_then, int64_t elapsed_s);

/* u256 as a double (rounded; for ratios and display only). */
double apy_u256_to_double(const u256 *v);

#endif
