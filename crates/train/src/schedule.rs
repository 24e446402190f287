//! Learning-rate schedules, as transformers defines them: linear warm-up from 0 over
//! `ceil(warmup_ratio · total)` steps, then cosine decay to 0, linear decay to 0, or constant.

use entangle_pipeline::Schedule;

/// The learning rate at optimiser step `step` (0-based: the rate used for the first update is
/// `lr_at(0, …)`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub base_lr: f64,
    pub total_steps: u64,
    pub warmup_steps: u64,
    pub schedule: Schedule,
}

impl LrSchedule {
    pub fn new(base_lr: f64, total_steps: u64, warmup_ratio: f64, schedule: Schedule) -> LrSchedule {
        let warmup_steps = (warmup_ratio * total_steps as f64).ceil() as u64;
        LrSchedule { base_lr, total_steps, warmup_steps, schedule }
    }

    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * step as f64 / self.warmup_steps as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / decay_steps;
        let factor = match self.schedule {
            Schedule::Constant => 1.0,
            Schedule::Linear => (1.0 - progress).max(0.0),
            Schedule::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
        };
        self.base_lr * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(schedule: Schedule, step: u64, expected: f64) {
        // 100 steps, 10% warm-up: steps 0..10 warm up, 10..100 decay.
        let lr = LrSchedule::new(1e-3, 100, 0.1, schedule).lr_at(step);
        assert!((lr - expected).abs() < 1e-12, "{schedule:?} step {step}: {lr} != {expected}");
    }

    #[test]
    fn warmup_rises_linearly_from_zero() {
        for schedule in [Schedule::Cosine, Schedule::Linear, Schedule::Constant] {
            check(schedule, 0, 0.0);
            check(schedule, 5, 5e-4);
            check(schedule, 10, 1e-3);
        }
    }

    #[test]
    fn decay_matches_its_formula_mid_way_and_at_the_last_step() {
        check(Schedule::Cosine, 55, 5e-4);
        check(Schedule::Linear, 55, 5e-4);
        check(Schedule::Constant, 55, 1e-3);
        let last = 1e-3 * 0.5 * (1.0 + (std::f64::consts::PI * 89.0 / 90.0).cos());
        check(Schedule::Cosine, 99, last);
        check(Schedule::Linear, 99, 1e-3 / 90.0);
    }

    #[test]
    fn warmup_steps_round_up_like_transformers() {
        assert_eq!(LrSchedule::new(1.0, 625, 0.02, Schedule::Cosine).warmup_steps, 13);
        assert_eq!(LrSchedule::new(1.0, 10, 0.0, Schedule::Cosine).warmup_steps, 0);
        assert_eq!(LrSchedule::new(1.0, 10, 0.0, Schedule::Cosine).lr_at(0), 1.0);
    }
}
