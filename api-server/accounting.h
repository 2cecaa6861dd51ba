/* accounting: the money model of DESIGN.md §2 as pure functions over u256.
 * No I/O, no clock, no allocation: callers (the ledger services) load the
 * vault and position rows FOR UPDATE, call these, and store the results in
 * the same transaction.
 *
 * Units. Token amounts are integers in the token's base units. Shares have
 * 18 decimals whatever the token; scale = 10^(18 - decimals); WAD = 10^18.
 * Share price is exact: price = nav / total_shares (a rational number);
 * the recorded index is floor(nav * scale * WAD / total_shares), so an
 * index of 1.05 is 1050000000000000000.
 *
 *   nav = idle + deployed - withdrawals_payable - locked_profit(now) - surplus
 *
 * Rounding always favours the vault: shares are minted down and burned up,
 * users' yield share is rounded down. Every function either applies its
 * whole effect or none (outputs untouched on error).
 *
 * Inflation guard: the first deposit into an empty vault must be at least
 * min_first_deposit (default one whole token), so a vault holds at least
 * 10^18 shares and one share base unit is worth a vanishing amount;
 * donations only enter through accrual and are released linearly over
 * profit_unlock_s seconds (as Yearn v3 does), so entering just before an
 * accrual and leaving just after earns nothing extra. When the last share
 * is burned, what little value is left (rounding remainders) moves to
 * `surplus`, owned by nobody's shares, so no later depositor gains it. */
#ifndef COFFER_ACCOUNTING_H
#define COFFER_ACCOUNTING_H

#include "u256.h"

#include <stdint.h>

#define ACCT_BPS_DENOM 10000u
#define ACCT_MAX_DECIMALS 18u

typedef enum {
    ACCT_OK = 0,
    ACCT_ERR_BAD_PARAM,          /* decimals > 18, fees above 100%, ... */
    ACCT_ERR_ZERO_AMOUNT,        /* amount must be positive */
    ACCT_ERR_BELOW_MIN_FIRST,    /* first deposit into an empty vault too small */
    ACCT_ERR_DUST,               /* amount too small to mint or burn one share unit */
    ACCT_ERR_NO_ASSETS,          /* shares exist but the vault's value is zero */
    ACCT_ERR_INSUFFICIENT,       /* more than the position's available balance */
    ACCT_ERR_RESERVATION_SHORT,  /* burning now needs more shares than were reserved */
    ACCT_ERR_LOSS,               /* observed assets below the books: pause, RealizeLoss */
    ACCT_ERR_NO_LOSS,            /* RealizeLoss without a loss */
    ACCT_ERR_IDLE_SHORT,         /* not enough idle assets for this move */
    ACCT_ERR_OVERFLOW,           /* a value left 256 bits */
    ACCT_ERR_INCONSISTENT,       /* the stored books break an invariant */
} acct_err;

typedef struct {
    unsigned decimals;        /* token decimals, 0..18 */
    u256 scale;               /* 10^(18 - decimals) */
    u256 min_first_deposit;   /* base units; 0 disables the guard */
    uint64_t profit_unlock_s; /* linear release of yield; 0 = at once */
} acct_params;

typedef struct {
    u256 total_shares;        /* Σ positions' shares, revenue accounts included */
    u256 idle_assets;         /* in the wallet, not deployed */
    u256 deployed_assets;     /* book value in protocols */
    u256 withdrawals_payable; /* burned withdrawals not yet paid out */
    u256 locked_profit;       /* profit still locked as of locked_at */
    int64_t locked_at;        /* unix seconds */
    u256 surplus;             /* value owned by no share (see above) */
    u256 current_index;       /* WAD-scaled, never decreases except by a loss */
} acct_vault;

typedef struct {
    u256 shares;
    u256 reserved_shares;      /* held for queued withdrawals */
    u256 weighted_entry_index; /* share-weighted index at which shares were bought */
    u256 total_deposited;      /* base units */
    u256 total_withdrawn;      /* base units */
} acct_position;

typedef struct {
    uint32_t end_user_yield_bps; /* end users' part of gross yield */
    uint32_t platform_fee_bps;   /* platform's part of gross yield */
} acct_fees;                     /* the client gets the rest */

typedef struct {
    u256 gross;               /* observed - book */
    u256 user_part;           /* rises the index (now or as it unlocks) */
    u256 client_part;         /* value of client_fee_shares */
    u256 platform_part;       /* value of platform_fee_shares */
    u256 client_fee_shares;   /* mint to the client's revenue account */
    u256 platform_fee_shares; /* mint to the platform's revenue account */
} acct_accrual;

/* 10^18 as a u256. */
u256 acct_wad(void);

const char *acct_strerror(acct_err err);

/* Fills params for a token. min_first_deposit NULL means one whole token.
 * Returns ACCT_OK or ACCT_ERR_BAD_PARAM (decimals > 18). */
__attribute__((warn_unused_result))
acct_err acct_params_init(acct_params *out, unsigned decimals, const u256 *min_first_deposit,
                          uint64_t profit_unlock_s);

/* A new, empty vault (index 1.0). */
void acct_vault_init(acct_vault *v);

/* A new, empty position. */
void acct_position_init(acct_position *pos);

/* Profit still locked at `now` (rounded up: never released early). */
__attribute__((warn_unused_result))
acct_err acct_locked_now(u256 *out, const acct_vault *v, const acct_params *p, int64_t now);

/* The assets that back the shares at `now`. ACCT_ERR_INCONSISTENT when the
 * books do not cover payable + locked + surplus. */
__attribute__((warn_unused_result))
acct_err acct_nav(u256 *out, const acct_vault *v, const acct_params *p, int64_t now);

/* The index at `now`: floor(nav*scale*WAD/total_shares), or the recorded
 * index when there are no shares. */
__attribute__((warn_unused_result))
acct_err acct_index(u256 *out, const acct_vault *v, const acct_params *p, int64_t now);

/* Value of `shares` at `now`, rounded down. */
__attribute__((warn_unused_result))
acct_err acct_shares_value(u256 *out, const acct_vault *v, const acct_params *p, int64_t now,
                           const u256 *shares);

/* Base units the position may still withdraw (its unreserved shares'
 * value, rounded down). */
__attribute__((warn_unused_result))
acct_err acct_available(u256 *out, const acct_vault *v, const acct_position *pos,
                        const acct_params *p, int64_t now);

/* A confirmed deposit of `amount` base units: mints floor(amount*S/nav)
 * shares (floor(amount*scale*WAD/index) into an empty vault), adds them to
 * the position and the vault, idle += amount, updates the weighted entry
 * index and the recorded index. *minted gets the shares. */
__attribute__((warn_unused_result))
acct_err acct_deposit(acct_vault *v, acct_position *pos, u256 *minted, const acct_params *p,
                      int64_t now, const u256 *amount);

/* A withdrawal request: reserves ceil(amount*S/nav) of the position's free
 * shares, if amount is within acct_available. *reserved gets them. */
__attribute__((warn_unused_result))
acct_err acct_reserve(acct_position *pos, u256 *reserved, const acct_vault *v,
                      const acct_params *p, int64_t now, const u256 *amount);

/* Gives back `reserved` shares (cancel, or a failure compensated). */
__attribute__((warn_unused_result))
acct_err acct_release(acct_position *pos, const u256 *reserved);

/* Executes a reserved withdrawal at today's price: burns ceil(amount*S/nav)
 * shares (at most `reserved`; the rest is released), moves `amount` into
 * withdrawals_payable. ACCT_ERR_RESERVATION_SHORT when the price fell so
 * far that the reservation no longer covers it (then nothing changes and
 * the caller compensates). *burned gets the shares burned. */
__attribute__((warn_unused_result))
acct_err acct_execute_withdrawal(acct_vault *v, acct_position *pos, u256 *burned,
                                 const acct_params *p, int64_t now, const u256 *amount,
                                 const u256 *reserved);

/* The payout of `amount` left the wallet: idle and payable both shrink. */
__attribute__((warn_unused_result))
acct_err acct_payout(acct_vault *v, const u256 *amount);

/* `amount` moved from idle into protocols (supplied and landed). */
__attribute__((warn_unused_result))
acct_err acct_stake(acct_vault *v, const u256 *amount);

/* `amount` came back from protocols into idle (withdrawn and landed);
 * book value falls by the same amount. */
__attribute__((warn_unused_result))
acct_err acct_unstake(acct_vault *v, const u256 *amount);

/* Yield accrual from an observed total (idle + on-chain positions):
 * gross = observed - (idle + deployed) goes into deployed; users' part
 * (end_user_yield_bps, rounded down) raises the index, at once or linearly
 * over profit_unlock_s; the client's and platform's parts are paid by
 * minting fee shares priced so that end users' index rises by their net
 * part only. Caller credits the fee shares to the revenue accounts.
 * ACCT_ERR_LOSS when observed < book (nothing changes: pause the vault). */
__attribute__((warn_unused_result))
acct_err acct_accrue(acct_vault *v, acct_accrual *out, const acct_params *p, int64_t now,
                     const u256 *observed_total, const acct_fees *fees);

/* An audited loss: observed < book. The loss is absorbed first by profit
 * still locked, then by deployed book value; the index falls only by what
 * remains. *loss gets book - observed. */
__attribute__((warn_unused_result))
acct_err acct_realize_loss(acct_vault *v, u256 *loss, const acct_params *p, int64_t now,
                           const u256 *observed_total);

#endif
