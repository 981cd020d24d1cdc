//! Finding the records a plugin call fails on, without failing the rest.
//!
//! A batch call that fails in a way one record can cause (a crash, a hang,
//! a memory or output limit, a budget) is split in halves, and each half
//! called again, down to single records: the records it still fails on get
//! the error, every other record its result. One bad record in a batch of
//! n costs about 2·log2(n) calls instead of n.

use std::future::Future;
use std::ops::Range;

use crate::runtime::CallError;

/// Runs `call` on the `count` items of a batch (it gets the range of items
/// to work on), splitting on a failure `splittable` says one item may cause.
/// Any other failure ends it (an outage: the run fails).
pub async fn bisect<O, F, Fut>(
    count: usize,
    splittable: impl Fn(&CallError) -> bool,
    call: F,
) -> Result<Vec<Result<O, CallError>>, CallError>
where
    F: Fn(Range<usize>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, CallError>>,
{
    let mut results: Vec<Option<Result<O, CallError>>> = std::iter::repeat_with(|| None).take(count).collect();
    let mut pending = vec![(0, count)];
    while let Some((start, end)) = pending.pop() {
        if start == end {
            continue;
        }
        match call(start..end).await {
            Ok(outputs) => {
                for (slot, output) in results[start..end].iter_mut().zip(outputs) {
                    *slot = Some(Ok(output));
                }
            }
            Err(error) if splittable(&error) && end - start > 1 => {
                let middle = start + (end - start) / 2;
                // The first half first, so results come in order of the batch.
                pending.push((middle, end));
                pending.push((start, middle));
            }
            Err(error) if splittable(&error) => results[start] = Some(Err(error)),
            Err(error) => return Err(error),
        }
    }
    Ok(results.into_iter().map(|r| r.expect("every item has a result")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::CallSite;
    use std::cell::Cell;

    fn crash() -> CallError {
        CallError::Trap { site: CallSite { plugin: "p".into(), instance: "i".into(), function: "map" }, message: "bad".into() }
    }

    #[test]
    fn only_the_bad_items_fail_in_few_calls() {
        let items: Vec<u32> = (0..1000).collect();
        let calls = Cell::new(0);
        let call = |range: Range<usize>| {
            calls.set(calls.get() + 1);
            let batch = &items[range];
            let result = if batch.contains(&417) { Err(crash()) } else { Ok(batch.iter().map(|i| i * 2).collect()) };
            std::future::ready(result)
        };
        let results = futures_lite(bisect(items.len(), |_| true, call));
        let results = results.unwrap();
        assert_eq!(results.len(), 1000);
        assert!(results[417].is_err());
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 999);
        assert_eq!(*results[418].as_ref().unwrap(), 836);
        assert!(calls.get() <= 2 * 10 + 1, "{} calls", calls.get());
    }

    #[test]
    fn a_failure_no_item_causes_ends_it() {
        let call = |_: Range<usize>| std::future::ready(Err::<Vec<u32>, _>(crash()));
        assert!(futures_lite(bisect(3, |_| false, call)).is_err());
    }

    fn futures_lite<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }
}
