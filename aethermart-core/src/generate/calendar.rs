//! When orders happen: the last 8 quarters, busier in Q4 (Black Friday, December), at weekends,
//! and growing over time. Order `i` of `n` gets the time at quantile `(i + jitter) / n`, so
//! order ids increase with time, as in a real shop.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};

/// A piecewise-uniform distribution over days, inverted by binary search.
#[derive(Debug, Clone)]
pub(crate) struct OrderCalendar {
    start: NaiveDate,
    /// Cumulative weight at the end of each day.
    cumulative: Vec<f64>,
}

/// First day of the quarter containing `day`.
fn quarter_start(day: NaiveDate) -> NaiveDate {
    let month = (day.month0() / 3) * 3 + 1;
    NaiveDate::from_ymd_opt(day.year(), month, 1).unwrap_or(day)
}

fn day_weight(day: NaiveDate, progress: f64) -> f64 {
    let season = match (day.month(), day.day()) {
        (11, 20..=30) => 2.6, // Black Friday and Cyber Monday
        (12, 1..=20) => 2.0,  // Christmas shopping
        (10..=12, _) => 1.5,  // the rest of Q4
        (1, 1..=10) => 0.7,   // January lull
        _ => 1.0,
    };
    let weekday = match day.weekday() {
        Weekday::Sat | Weekday::Sun => 1.25,
        _ => 1.0,
    };
    let growth = 1.0 + 0.4 * progress;
    season * weekday * growth
}

impl OrderCalendar {
    /// The 8 quarters ending on `as_of` (inclusive): from the start of the quarter seven
    /// quarters before `as_of`'s quarter.
    pub(crate) fn new(as_of: NaiveDate) -> Self {
        let mut start = quarter_start(as_of);
        for _ in 0..7 {
            start = quarter_start(start - Duration::days(1));
        }
        let days = (as_of - start).num_days().max(0) as usize + 1;
        let mut cumulative = Vec::with_capacity(days);
        let mut total = 0.0;
        for d in 0..days {
            let day = start + Duration::days(d as i64);
            total += day_weight(day, d as f64 / days as f64);
            cumulative.push(total);
        }
        Self { start, cumulative }
    }

    /// First day of the window.
    pub(crate) fn start(&self) -> NaiveDate {
        self.start
    }

    /// The time at quantile `q` in `[0, 1)`.
    pub(crate) fn at(&self, q: f64) -> DateTime<Utc> {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let target = q.clamp(0.0, 0.999_999_999) * total;
        let day = self.cumulative.partition_point(|&c| c <= target);
        let day = day.min(self.cumulative.len() - 1);
        let before = if day == 0 {
            0.0
        } else {
            self.cumulative[day - 1]
        };
        let within = ((target - before) / (self.cumulative[day] - before)).clamp(0.0, 1.0);
        let midnight = (self.start + Duration::days(day as i64))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc();
        // Whole seconds keep the data readable and byte-stable.
        midnight + Duration::seconds((within * 86_399.0) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_quarters_with_a_q4_peak() {
        let cal = OrderCalendar::new(NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
        assert_eq!(cal.start(), NaiveDate::from_ymd_opt(2025, 1, 1).unwrap());
        let n = 100_000;
        let times: Vec<_> = (0..n)
            .map(|i| cal.at((i as f64 + 0.5) / n as f64))
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "monotone in the quantile"
        );
        assert!(times[0].date_naive() >= cal.start());
        assert!(times[n - 1].date_naive() <= NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
        let in_month = |y, m| {
            times
                .iter()
                .filter(|t| t.year() == y && t.month() == m)
                .count()
        };
        assert!(
            in_month(2025, 12) as f64 > 1.6 * in_month(2025, 6) as f64,
            "December beats June"
        );
        assert!(in_month(2025, 11) > in_month(2025, 9));
    }
}
