//! A lazily computed value whose computation may yield nothing: "not computed yet" and
//! "computed, nothing" are different states, so a failed computation is not repeated.

/// One cached result of a computation that may yield `None`.
#[derive(Debug, Clone, Default)]
pub(crate) enum Memo<T> {
    /// Not computed yet.
    #[default]
    Pending,
    /// Computed; `None` when the computation yielded nothing.
    Done(Option<T>),
}

impl<T> Memo<T> {
    /// The cached result, computing it with `f` on first use.
    pub(crate) fn get_or_compute(&mut self, f: impl FnOnce() -> Option<T>) -> Option<&T> {
        if let Memo::Pending = self {
            *self = Memo::Done(f());
        }
        match self {
            Memo::Done(v) => v.as_ref(),
            Memo::Pending => unreachable!("computed above"),
        }
    }

    /// The result when it has been computed and yielded something; `None` otherwise.
    pub(crate) fn value(&self) -> Option<&T> {
        match self {
            Memo::Done(v) => v.as_ref(),
            Memo::Pending => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_computation_that_yields_nothing_runs_once() {
        let mut memo: Memo<u32> = Memo::default();
        let mut runs = 0;
        assert_eq!(memo.value(), None);
        for _ in 0..3 {
            let got = memo.get_or_compute(|| {
                runs += 1;
                None
            });
            assert_eq!(got, None);
        }
        assert_eq!(runs, 1, "a `None` result is cached, not recomputed");
    }

    #[test]
    fn a_computed_value_is_kept_and_read_back() {
        let mut memo = Memo::default();
        assert_eq!(memo.get_or_compute(|| Some(7)), Some(&7));
        assert_eq!(memo.get_or_compute(|| Some(8)), Some(&7));
        assert_eq!(memo.value(), Some(&7));
    }
}
