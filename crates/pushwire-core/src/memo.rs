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
