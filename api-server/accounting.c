#include "accounting.h"

#include <string.h>

/* For differences the checks just above guarantee; should one ever fail,
 * the books are wrong and nothing is applied. */
#define ACCT_SUB(out, a, b)                  \
    do {                                     \
        if (u256_sub((out), (a), (b)) != 0)  \
            return ACCT_ERR_INCONSISTENT;    \
    } while (0)

/* Every helper returns ACCT_OK or an error; results are written only on
 * success, so callers may stage into locals and commit at the end. */

u256 acct_wad(void)
{
    return u256_from_u64(1000000000000000000ull);
}

const char *acct_strerror(acct_err err)
{
    switch (err) {
    case ACCT_OK: return "ok";
    case ACCT_ERR_BAD_PARAM: return "invalid accounting parameter";
    case ACCT_ERR_ZERO_AMOUNT: return "amount must be greater than zero";
    case ACCT_ERR_BELOW_MIN_FIRST: return "the first deposit into an empty vault is below the minimum";
    case ACCT_ERR_DUST: return "amount is too small to mint or burn a share";
    case ACCT_ERR_NO_ASSETS: return "the vault has shares but no assets";
    case ACCT_ERR_INSUFFICIENT: return "amount exceeds the available balance";
    case ACCT_ERR_RESERVATION_SHORT: return "the reserved shares no longer cover the amount at today's index";
    case ACCT_ERR_LOSS: return "observed assets are below the books: the vault must be paused for RealizeLoss";
    case ACCT_ERR_NO_LOSS: return "observed assets are not below the books: there is no loss to realize";
    case ACCT_ERR_IDLE_SHORT: return "not enough idle assets";
    case ACCT_ERR_OVERFLOW: return "amount out of range (256-bit overflow)";
    case ACCT_ERR_INCONSISTENT: return "the vault's books are inconsistent";
    }
    return "unknown accounting error";
}

static acct_err acct_add(u256 *out, const u256 *a, const u256 *b)
{
    return u256_add(out, a, b) == 0 ? ACCT_OK : ACCT_ERR_OVERFLOW;
}

/* a - b where a < b means the books are wrong, not the caller. */
static acct_err acct_sub_books(u256 *out, const u256 *a, const u256 *b)
{
    return u256_sub(out, a, b) == 0 ? ACCT_OK : ACCT_ERR_INCONSISTENT;
}

static const u256 *acct_min(const u256 *a, const u256 *b)
{
    return u256_cmp(a, b) <= 0 ? a : b;
}

acct_err acct_params_init(acct_params *out, unsigned decimals, const u256 *min_first_deposit,
                          uint64_t profit_unlock_s)
{
    acct_params p;
    if (decimals > ACCT_MAX_DECIMALS)
        return ACCT_ERR_BAD_PARAM;
    if (profit_unlock_s > (uint64_t)INT64_MAX)
        return ACCT_ERR_BAD_PARAM;
    p.decimals = decimals;
    if (u256_pow10(&p.scale, ACCT_MAX_DECIMALS - decimals) != 0)
        return ACCT_ERR_BAD_PARAM;
    if (min_first_deposit) {
        p.min_first_deposit = *min_first_deposit;
    } else if (u256_pow10(&p.min_first_deposit, decimals) != 0) {
        return ACCT_ERR_BAD_PARAM;
    }
    p.profit_unlock_s = profit_unlock_s;
    *out = p;
    return ACCT_OK;
}

void acct_vault_init(acct_vault *v)
{
    memset(v, 0, sizeof *v);
    v->current_index = acct_wad();
}

void acct_position_init(acct_position *pos)
{
    memset(pos, 0, sizeof *pos);
}

acct_err acct_locked_now(u256 *out, const acct_vault *v, const acct_params *p, int64_t now)
{
    if (u256_is_zero(&v->locked_profit) || p->profit_unlock_s == 0) {
        *out = p->profit_unlock_s == 0 ? U256_ZERO : v->locked_profit;
        return ACCT_OK;
    }
    if (now <= v->locked_at) {
        *out = v->locked_profit;
        return ACCT_OK;
    }
    uint64_t elapsed = (uint64_t)(now - v->locked_at);
    if (elapsed >= p->profit_unlock_s) {
        *out = U256_ZERO;
        return ACCT_OK;
    }
    u256 left = u256_from_u64(p->profit_unlock_s - elapsed);
    u256 period = u256_from_u64(p->profit_unlock_s);
    if (u256_muldiv_ceil(out, &v->locked_profit, &left, &period) != 0)
        return ACCT_ERR_OVERFLOW;
    return ACCT_OK;
}

acct_err acct_nav(u256 *out, const acct_vault *v, const acct_params *p, int64_t now)
{
    u256 books, owed, locked;
    acct_err e;
    if ((e = acct_add(&books, &v->idle_assets, &v->deployed_assets)) != ACCT_OK)
        return e;
    if ((e = acct_locked_now(&locked, v, p, now)) != ACCT_OK)
        return e;
    if ((e = acct_add(&owed, &v->withdrawals_payable, &locked)) != ACCT_OK)
        return e;
    if ((e = acct_add(&owed, &owed, &v->surplus)) != ACCT_OK)
        return e;
    if ((e = acct_sub_books(out, &books, &owed)) != ACCT_OK)
        return e;
    /* No shares, no owners: any value left must have moved to surplus. */
    if (u256_is_zero(&v->total_shares) && !u256_is_zero(out))
        return ACCT_ERR_INCONSISTENT;
    return ACCT_OK;
}

/* scale * WAD, the factor between a price in base units per share unit and
 * a WAD-scaled index. */
static acct_err acct_index_factor(u256 *out, const acct_params *p)
{
    u256 wad = acct_wad();
    return u256_mul(out, &p->scale, &wad) == 0 ? ACCT_OK : ACCT_ERR_OVERFLOW;
}

static acct_err acct_index_from(u256 *out, const acct_vault *v, const acct_params *p,
                                const u256 *nav)
{
    u256 k;
    acct_err e;
    if (u256_is_zero(&v->total_shares)) {
        *out = v->current_index;
        return ACCT_OK;
    }
    if ((e = acct_index_factor(&k, p)) != ACCT_OK)
        return e;
    return u256_muldiv_floor(out, nav, &k, &v->total_shares) == 0 ? ACCT_OK : ACCT_ERR_OVERFLOW;
}

acct_err acct_index(u256 *out, const acct_vault *v, const acct_params *p, int64_t now)
{
    u256 nav;
    acct_err e = acct_nav(&nav, v, p, now);
    if (e != ACCT_OK)
        return e;
    return acct_index_from(out, v, p, &nav);
}

acct_err acct_shares_value(u256 *out, const acct_vault *v, const acct_params *p, int64_t now,
                           const u256 *shares)
{
    u256 nav;
    acct_err e;
    if (u256_cmp(shares, &v->total_shares) > 0)
        return ACCT_ERR_INCONSISTENT;
    if (u256_is_zero(&v->total_shares)) {
        *out = U256_ZERO;
        return ACCT_OK;
    }
    if ((e = acct_nav(&nav, v, p, now)) != ACCT_OK)
        return e;
    return u256_muldiv_floor(out, shares, &nav, &v->total_shares) == 0 ? ACCT_OK : ACCT_ERR_OVERFLOW;
}

acct_err acct_available(u256 *out, const acct_vault *v, const acct_position *pos,
                        const acct_params *p, int64_t now)
{
    u256 free_shares;
    acct_err e;
    if ((e = acct_sub_books(&free_shares, &pos->shares, &pos->reserved_shares)) != ACCT_OK)
        return e;
    return acct_shares_value(out, v, p, now, &free_shares);
}

/* The recorded index after a change: never below the old one unless a
 * loss is being realized (only acct_realize_loss lowers it). */
static acct_err acct_next_index(u256 *out, const acct_vault *after, const acct_vault *before,
                                const acct_params *p, int64_t now)
{
    u256 idx;
    acct_err e = acct_index(&idx, after, p, now);
    if (e != ACCT_OK)
        return e;
    if (u256_cmp(&idx, &before->current_index) < 0)
        return ACCT_ERR_INCONSISTENT;
    *out = idx;
    return ACCT_OK;
}

acct_err acct_deposit(acct_vault *v, acct_position *pos, u256 *minted, const acct_params *p,
                      int64_t now, const u256 *amount)
{
    acct_vault nv = *v;
    acct_position np = *pos;
    u256 nav, shares, index_now, k, t1, t2, sum;
    acct_err e;

    if (u256_is_zero(amount))
        return ACCT_ERR_ZERO_AMOUNT;
    if ((e = acct_nav(&nav, v, p, now)) != ACCT_OK)
        return e;
    if ((e = acct_index_from(&index_now, v, p, &nav)) != ACCT_OK)
        return e;
    if (u256_is_zero(&v->total_shares)) {
        if (u256_cmp(amount, &p->min_first_deposit) < 0)
            return ACCT_ERR_BELOW_MIN_FIRST;
        if ((e = acct_index_factor(&k, p)) != ACCT_OK)
            return e;
        if (u256_is_zero(&v->current_index))
            return ACCT_ERR_INCONSISTENT;
        if (u256_muldiv_floor(&shares, amount, &k, &v->current_index) != 0)
            return ACCT_ERR_OVERFLOW;
    } else {
        if (u256_is_zero(&nav))
            return ACCT_ERR_NO_ASSETS;
        if (u256_muldiv_floor(&shares, amount, &v->total_shares, &nav) != 0)
            return ACCT_ERR_OVERFLOW;
    }
    if (u256_is_zero(&shares))
        return ACCT_ERR_DUST;

    /* Weighted entry index: (old_shares*old_entry + new_shares*index) / total. */
    if ((e = acct_add(&sum, &pos->shares, &shares)) != ACCT_OK)
        return e;
    if (u256_mul(&t1, &pos->shares, &pos->weighted_entry_index) != 0 ||
        u256_mul(&t2, &shares, &index_now) != 0 || u256_add(&t1, &t1, &t2) != 0)
        return ACCT_ERR_OVERFLOW;
    if (u256_divmod(&np.weighted_entry_index, NULL, &t1, &sum) != 0)
        return ACCT_ERR_INCONSISTENT;

    np.shares = sum;
    if ((e = acct_add(&np.total_deposited, &pos->total_deposited, amount)) != ACCT_OK)
        return e;
    if ((e = acct_add(&nv.total_shares, &v->total_shares, &shares)) != ACCT_OK)
        return e;
    if ((e = acct_add(&nv.idle_assets, &v->idle_assets, amount)) != ACCT_OK)
        return e;
    if ((e = acct_next_index(&nv.current_index, &nv, v, p, now)) != ACCT_OK)
        return e;
    *v = nv;
    *pos = np;
    *minted = shares;
    return ACCT_OK;
}

acct_err acct_reserve(acct_position *pos, u256 *reserved, const acct_vault *v,
                      const acct_params *p, int64_t now, const u256 *amount)
{
    u256 avail, nav, need, free_shares;
    acct_err e;
    if (u256_is_zero(amount))
        return ACCT_ERR_ZERO_AMOUNT;
    if ((e = acct_available(&avail, v, pos, p, now)) != ACCT_OK)
        return e;
    if (u256_cmp(amount, &avail) > 0)
        return ACCT_ERR_INSUFFICIENT;
    if ((e = acct_nav(&nav, v, p, now)) != ACCT_OK)
        return e;
    if (u256_is_zero(&nav))
        return ACCT_ERR_NO_ASSETS;
    if (u256_muldiv_ceil(&need, amount, &v->total_shares, &nav) != 0)
        return ACCT_ERR_OVERFLOW;
    if ((e = acct_sub_books(&free_shares, &pos->shares, &pos->reserved_shares)) != ACCT_OK)
        return e;
    if (u256_cmp(&need, &free_shares) > 0)
        return ACCT_ERR_INSUFFICIENT;
    if ((e = acct_add(&pos->reserved_shares, &pos->reserved_shares, &need)) != ACCT_OK)
        return e;
    *reserved = need;
    return ACCT_OK;
}

acct_err acct_release(acct_position *pos, const u256 *reserved)
{
    return acct_sub_books(&pos->reserved_shares, &pos->reserved_shares, reserved);
}

acct_err acct_execute_withdrawal(acct_vault *v, acct_position *pos, u256 *burned,
                                 const acct_params *p, int64_t now, const u256 *amount,
                                 const u256 *reserved)
{
    acct_vault nv = *v;
    acct_position np = *pos;
    u256 nav, burn;
    acct_err e;

    if (u256_is_zero(amount))
        return ACCT_ERR_ZERO_AMOUNT;
    if (u256_cmp(reserved, &pos->reserved_shares) > 0 || u256_cmp(reserved, &pos->shares) > 0)
        return ACCT_ERR_INCONSISTENT;
    if ((e = acct_nav(&nav, v, p, now)) != ACCT_OK)
        return e;
    if (u256_is_zero(&nav))
        return ACCT_ERR_NO_ASSETS;
    if (u256_cmp(amount, &nav) > 0)
        return ACCT_ERR_RESERVATION_SHORT;
    if (u256_muldiv_ceil(&burn, amount, &v->total_shares, &nav) != 0)
        return ACCT_ERR_OVERFLOW;
    if (u256_cmp(&burn, reserved) > 0)
        return ACCT_ERR_RESERVATION_SHORT;

    if ((e = acct_sub_books(&np.shares, &pos->shares, &burn)) != ACCT_OK ||
        (e = acct_sub_books(&np.reserved_shares, &pos->reserved_shares, reserved)) != ACCT_OK ||
        (e = acct_sub_books(&nv.total_shares, &v->total_shares, &burn)) != ACCT_OK)
        return e;
    if ((e = acct_add(&nv.withdrawals_payable, &v->withdrawals_payable, amount)) != ACCT_OK ||
        (e = acct_add(&np.total_withdrawn, &pos->total_withdrawn, amount)) != ACCT_OK)
        return e;
    if (u256_is_zero(&nv.total_shares)) {
        /* The last shares are gone; the rounding remainder belongs to no
         * one and must not be handed to the next depositor. */
        u256 books, owed, locked, left;
        if ((e = acct_add(&books, &nv.idle_assets, &nv.deployed_assets)) != ACCT_OK ||
            (e = acct_locked_now(&locked, &nv, p, now)) != ACCT_OK ||
            (e = acct_add(&owed, &nv.withdrawals_payable, &locked)) != ACCT_OK ||
            (e = acct_add(&owed, &owed, &nv.surplus)) != ACCT_OK ||
            (e = acct_sub_books(&left, &books, &owed)) != ACCT_OK ||
            (e = acct_add(&nv.surplus, &nv.surplus, &left)) != ACCT_OK)
            return e;
        nv.current_index = v->current_index;
    } else if ((e = acct_next_index(&nv.current_index, &nv, v, p, now)) != ACCT_OK) {
        return e;
    }
    *v = nv;
    *pos = np;
    *burned = burn;
    return ACCT_OK;
}

acct_err acct_payout(acct_vault *v, const u256 *amount)
{
    u256 idle, payable;
    if (u256_is_zero(amount))
        return ACCT_ERR_ZERO_AMOUNT;
    if (u256_cmp(amount, &v->withdrawals_payable) > 0)
        return ACCT_ERR_INSUFFICIENT;
    if (u256_sub(&idle, &v->idle_assets, amount) != 0)
        return ACCT_ERR_IDLE_SHORT;
    ACCT_SUB(&payable, &v->withdrawals_payable, amount);
    v->idle_assets = idle;
    v->withdrawals_payable = payable;
    return ACCT_OK;
}

acct_err acct_stake(acct_vault *v, const u256 *amount)
{
    u256 free_idle, idle, deployed;
    if (u256_is_zero(amount))
        return ACCT_ERR_ZERO_AMOUNT;
    /* Money owed to executed withdrawals stays in the wallet. */
    if (u256_sub(&free_idle, &v->idle_assets, &v->withdrawals_payable) != 0 ||
        u256_cmp(amount, &free_idle) > 0)
        return ACCT_ERR_IDLE_SHORT;
    if (u256_add(&deployed, &v->deployed_assets, amount) != 0)
        return ACCT_ERR_OVERFLOW;
    ACCT_SUB(&idle, &v->idle_assets, amount);
    v->idle_assets = idle;
    v->deployed_assets = deployed;
    return ACCT_OK;
}

acct_err acct_unstake(acct_vault *v, const u256 *amount)
{
    u256 idle, deployed;
    if (u256_is_zero(amount))
        return ACCT_ERR_ZERO_AMOUNT;
    if (u256_sub(&deployed, &v->deployed_assets, amount) != 0)
        return ACCT_ERR_INSUFFICIENT;
    if (u256_add(&idle, &v->idle_assets, amount) != 0)
        return ACCT_ERR_OVERFLOW;
    v->idle_assets = idle;
    v->deployed_assets = deployed;
    return ACCT_OK;
}

acct_err acct_accrue(acct_vault *v, acct_accrual *out, const acct_params *p, int64_t now,
                     const u256 *observed_total, const acct_fees *fees)
{
    acct_vault nv = *v;
    acct_accrual r;
    u256 books, nav, locked, denom, fee_part, unlocked_user = U256_ZERO;
    u256 bps_denom = u256_from_u64(ACCT_BPS_DENOM);
    acct_err e;

    if ((uint64_t)fees->end_user_yield_bps + fees->platform_fee_bps > ACCT_BPS_DENOM)
        return ACCT_ERR_BAD_PARAM;
    memset(&r, 0, sizeof r);
    if ((e = acct_add(&books, &v->idle_assets, &v->deployed_assets)) != ACCT_OK)
        return e;
    if (u256_cmp(observed_total, &books) < 0)
        return ACCT_ERR_LOSS;
    ACCT_SUB(&r.gross, observed_total, &books);
    if (u256_is_zero(&r.gross)) {
        *out = r;
        return ACCT_OK;
    }
    if ((e = acct_nav(&nav, v, p, now)) != ACCT_OK)
        return e;
    if ((e = acct_locked_now(&locked, v, p, now)) != ACCT_OK)
        return e;
    if ((e = acct_add(&nv.deployed_assets, &v->deployed_assets, &r.gross)) != ACCT_OK)
        return e;

    if (u256_is_zero(&v->total_shares)) {
        /* Yield with no shareholders (a donation to an empty vault). */
        if ((e = acct_add(&nv.surplus, &v->surplus, &r.gross)) != ACCT_OK)
            return e;
        *v = nv;
        *out = r;
        return ACCT_OK;
    }

    u256 ub = u256_from_u64(fees->end_user_yield_bps);
    u256 pb = u256_from_u64(fees->platform_fee_bps);
    if (u256_muldiv_floor(&r.user_part, &r.gross, &ub, &bps_denom) != 0 ||
        u256_muldiv_floor(&r.platform_part, &r.gross, &pb, &bps_denom) != 0)
        return ACCT_ERR_OVERFLOW;
    ACCT_SUB(&fee_part, &r.gross, &r.user_part);
    ACCT_SUB(&r.client_part, &fee_part, &r.platform_part);

    if (p->profit_unlock_s == 0) {
        unlocked_user = r.user_part;
        nv.locked_profit = U256_ZERO;
    } else {
        /* What was still locked and the new part unlock together over the
         * next period. */
        if ((e = acct_add(&nv.locked_profit, &locked, &r.user_part)) != ACCT_OK)
            return e;
        nv.locked_at = now;
    }

    if (!u256_is_zero(&fee_part)) {
        /* Priced against the value end users will own, so that the fee
         * shares are worth fee_part once the users' part is released and
         * the index rises by the users' part only. */
        u256 fee_shares;
        if ((e = acct_add(&denom, &nav, &unlocked_user)) != ACCT_OK)
            return e;
        if (u256_is_zero(&denom))
            return ACCT_ERR_NO_ASSETS;
        if (u256_muldiv_floor(&fee_shares, &fee_part, &v->total_shares, &denom) != 0)
            return ACCT_ERR_OVERFLOW;
        if (u256_muldiv_floor(&r.platform_fee_shares, &fee_shares, &r.platform_part, &fee_part) != 0)
            return ACCT_ERR_OVERFLOW;
        ACCT_SUB(&r.client_fee_shares, &fee_shares, &r.platform_fee_shares);
        if ((e = acct_add(&nv.total_shares, &v->total_shares, &fee_shares)) != ACCT_OK)
            return e;
    }
    if ((e = acct_next_index(&nv.current_index, &nv, v, p, now)) != ACCT_OK)
        return e;
    *v = nv;
    *out = r;
    return ACCT_OK;
}

acct_err acct_realize_loss(acct_vault *v, u256 *loss, const acct_params *p, int64_t now,
                           const u256 *observed_total)
{
    acct_vault nv = *v;
    u256 books, l, locked, rest, from_locked, from_surplus;
    acct_err e;

    if ((e = acct_add(&books, &v->idle_assets, &v->deployed_assets)) != ACCT_OK)
        return e;
    if (u256_cmp(observed_total, &books) >= 0)
        return ACCT_ERR_NO_LOSS;
    ACCT_SUB(&l, &books, observed_total);
    /* Idle assets are counted exactly; only protocol positions can lose. */
    if (u256_cmp(&l, &v->deployed_assets) > 0)
        return ACCT_ERR_INCONSISTENT;
    if ((e = acct_locked_now(&locked, v, p, now)) != ACCT_OK)
        return e;
    /* Absorbed first by profit not yet released, then by value no share
     * owns, and only then by shareholders. */
    from_locked = *acct_min(&l, &locked);
    ACCT_SUB(&rest, &l, &from_locked);
    ACCT_SUB(&nv.locked_profit, &locked, &from_locked);
    nv.locked_at = now;
    from_surplus = *acct_min(&rest, &v->surplus);
    ACCT_SUB(&nv.surplus, &v->surplus, &from_surplus);
    ACCT_SUB(&nv.deployed_assets, &v->deployed_assets, &l);
    /* The books must still cover what is owed; otherwise an operator has
     * to look at it. */
    u256 nav;
    if ((e = acct_nav(&nav, &nv, p, now)) != ACCT_OK)
        return e;
    if ((e = acct_index_from(&nv.current_index, &nv, p, &nav)) != ACCT_OK)
        return e;
    if (u256_is_zero(&nv.total_shares))
        nv.current_index = v->current_index;
    *v = nv;
    *loss = l;
    return ACCT_OK;
}
