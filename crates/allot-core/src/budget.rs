//! GPU-hour allocations (budgets) on tenants, as national centres grant compute to
//! proposals: a grant of GPU-hours valid in `[start, expiry)`. When a tenant (or an
//! ancestor) has budgets, its new jobs start only while one is active and not spent;
//! running jobs are never stopped by a budget.
//!
//! Spending is tracked as a piecewise-linear function of time per tenant subtree:
//! `spent(t)` grows at the rate of GPUs its running jobs hold. A budget's use is
//! `spent(now) - spent(start)`.

use crate::config::{Config, datetime_to_ms};
use crate::error::ConfigError;
use crate::ids::{MS_PER_H, TenantIdx, Time};
use crate::tenants::Tenants;

#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    pub start: Time,
    pub expiry: Time,
    /// Granted GPU-milliseconds.
    pub granted: f64,
    /// `spent` of the tenant when the budget started; set once the budget is reached.
    spent_at_start: Option<f64>,
}

impl Budget {
    pub fn new(start: Time, expiry: Time, gpu_hours: f64) -> Budget {
        Budget { start, expiry, granted: gpu_hours * MS_PER_H as f64, spent_at_start: None }
    }
}

/// Why a tenant's budget holds its jobs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BudgetBlock {
    /// No budget is active now; the next one starts at `next` (if any).
    NoneActive { tenant: TenantIdx, next: Option<Time> },
    /// The active budget is spent.
    Exhausted { tenant: TenantIdx, expiry: Time },
}

#[derive(Clone, Debug, Default)]
pub struct Budgets {
    /// Per tenant, budgets sorted by start (non-overlapping).
    by_tenant: Vec<Vec<Budget>>,
    /// Per tenant: spent GPU-ms at `at`, and the GPU rate since.
    spent: Vec<f64>,
    rate: Vec<f64>,
    at: Vec<Time>,
    any: bool,
}

impl Budgets {
    pub fn from_config(config: &Config, tenants: &Tenants) -> Result<Budgets, ConfigError> {
        let n = tenants.len();
        let mut b = Budgets { by_tenant: vec![vec![]; n], spent: vec![0.0; n], rate: vec![0.0; n], at: vec![0; n], any: false };
        for (i, bc) in config.budgets.iter().enumerate() {
            let at = format!("budgets[{i}]");
            let t = tenants
                .index(&bc.tenant)
                .ok_or_else(|| ConfigError::new(format!("{at}.tenant"), format!("unknown tenant `{}`", bc.tenant)))?;
            let start = datetime_to_ms(&bc.start).ok_or_else(|| ConfigError::new(format!("{at}.start"), "needs a date"))?;
            let expiry = datetime_to_ms(&bc.expiry).ok_or_else(|| ConfigError::new(format!("{at}.expiry"), "needs a date"))?;
            if !(bc.gpu_hours >= 0.0 && bc.gpu_hours.is_finite()) {
                return Err(ConfigError::new(format!("{at}.gpu_hours"), "must be a non-negative number"));
            }
            b.grant(t, Budget::new(start, expiry, bc.gpu_hours)).map_err(|e| ConfigError::new(at, e))?;
        }
        Ok(b)
    }

    /// Adds a budget; windows of one tenant may not overlap.
    pub fn grant(&mut self, t: TenantIdx, budget: Budget) -> Result<(), String> {
        if budget.expiry <= budget.start {
            return Err("expiry must be after start".into());
        }
        let list = &mut self.by_tenant[t.ix()];
        if list.iter().any(|o| o.start < budget.expiry && budget.start < o.expiry) {
            return Err("overlaps another budget of the same tenant".into());
        }
        list.push(budget);
        list.sort_by_key(|b| b.start);
        self.any = true;
        Ok(())
    }

    /// Makes room for a tenant added at runtime (it has no budget yet).
    pub(crate) fn add_tenant(&mut self, now: Time) {
        self.by_tenant.push(vec![]);
        self.spent.push(0.0);
        self.rate.push(0.0);
        self.at.push(now);
    }

    /// Forgets the budgets of a removed tenant.
    pub(crate) fn remove_tenant(&mut self, t: TenantIdx) {
        self.by_tenant[t.ix()].clear();
    }

    pub fn of(&self, t: TenantIdx) -> &[Budget] {
        &self.by_tenant[t.ix()]
    }

    fn spent_at(&self, t: usize, now: Time) -> f64 {
        self.spent[t] + self.rate[t] * (now - self.at[t]) as f64
    }

    /// Brings tenant `t`'s spending to `now`, marking budgets that started meanwhile.
    fn advance(&mut self, t: usize, now: Time) {
        if now <= self.at[t] {
            return;
        }
        for i in 0..self.by_tenant[t].len() {
            let b = &self.by_tenant[t][i];
            if b.spent_at_start.is_none() && b.start <= now {
                let s = if b.start >= self.at[t] { self.spent_at(t, b.start) } else { self.spent_at(t, self.at[t]) };
                self.by_tenant[t][i].spent_at_start = Some(s);
            }
        }
        self.spent[t] = self.spent_at(t, now);
        self.at[t] = now;
    }

    /// A job of tenant `t` holding `gpus` started (`gpus > 0`) or stopped (`< 0`).
    pub fn add_rate(&mut self, tenants: &Tenants, t: TenantIdx, gpus: f64, now: Time) {
        // Rates are kept for every tenant, so a budget granted while jobs run counts them.
        let mut x = Some(t);
        while let Some(ti) = x {
            self.advance(ti.ix(), now);
            self.rate[ti.ix()] += gpus;
            x = tenants.tenants[ti.ix()].parent;
        }
    }

    /// Checks every budget on `t`'s path at `now`.
    pub fn check(&mut self, tenants: &Tenants, t: TenantIdx, now: Time) -> Result<(), BudgetBlock> {
        if !self.any {
            return Ok(());
        }
        let mut x = Some(t);
        while let Some(ti) = x {
            if !self.by_tenant[ti.ix()].is_empty() {
                self.advance(ti.ix(), now);
                let list = &self.by_tenant[ti.ix()];
                match list.iter().find(|b| b.start <= now && now < b.expiry) {
                    None => {
                        let next = list.iter().find(|b| b.start > now).map(|b| b.start);
                        return Err(BudgetBlock::NoneActive { tenant: ti, next });
                    }
                    Some(b) => {
                        let used = self.spent[ti.ix()] - b.spent_at_start.unwrap_or(self.spent[ti.ix()]);
                        if used >= b.granted {
                            return Err(BudgetBlock::Exhausted { tenant: ti, expiry: b.expiry });
                        }
                    }
                }
            }
            x = tenants.tenants[ti.ix()].parent;
        }
        Ok(())
    }

    /// GPU-hours left in `t`'s active budget at `now` (`None`: no budget applies).
    pub fn remaining_gpu_hours(&mut self, t: TenantIdx, now: Time) -> Option<f64> {
        if self.by_tenant[t.ix()].is_empty() {
            return None;
        }
        self.advance(t.ix(), now);
        let spent = self.spent[t.ix()];
        let b = self.by_tenant[t.ix()].iter().find(|b| b.start <= now && now < b.expiry)?;
        Some(((b.granted - (spent - b.spent_at_start.unwrap_or(spent))) / MS_PER_H as f64).max(0.0))
    }
}
