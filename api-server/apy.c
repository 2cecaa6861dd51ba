#include "apy.h"

#include <math.h>
#include <stdlib.h>

double apy_u256_to_double(const u256 *v)
{
    char dec[U256_DEC_MAX];
    u256_to_dec(dec, v);
    return strtod(dec, NULL);
}

double apy_annualized(const u256 *index_now, const u256 *index_then, int64_t elapsed_s)
{
    if (!index_now || !index_then || u256_is_zero(index_then) || elapsed_s <= 0)
        return 0.0;
    double ratio = apy_u256_to_double(index_now) / apy_u256_to_double(index_then);
    if (!(ratio > 0.0) || !isfinite(ratio))
        return ratio == 0.0 ? -1.0 : 0.0;
    double apy = exp(log(ratio) * ((double)APY_YEAR_SECONDS / (double)elapsed_s)) - 1.0;
    if (!isfinite(apy) || apy > 1e6)
        return isnan(apy) ? 0.0 : 1e6;
    return apy < -1.0 ? -1.0 : apy;
}
