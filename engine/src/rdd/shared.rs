//! `map_partitions_borrowed`: a function of a whole partition, borrowed as one slice.
//!
//! Iterating a cached partition yields clones of its elements (an iterator of owned values
//! cannot lend out the cache's); for elements that own heap memory (vectors, strings) a pass
//! over a cached RDD then allocates and frees every element once. A function that only reads
//! its partition (statistics, stacking rows into blocks) gets the cached vector itself here.

use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BoxIter, Compute, Dependency, NodeMeta, Rdd, RddNode, shared_partition};
use crate::data::Data;
use crate::error::Result;
use crate::func::{Fun1, Shipped1};
use crate::task_context::TaskContext;
use crate::wire::{self, Encoded};

#[derive(Serialize, Deserialize)]
#[serde(bound = "T: Data, F: for<'a> Fun1<&'a [T], I>")]
pub(crate) struct MapBorrowedNode<T: 'static, U, I, F> {
    meta: NodeMeta,
    #[serde(with = "wire::node_ref")]
    parent: Arc<dyn Compute<T>>,
    f: Shipped1<F, &'static [T], I>,
    _types: PhantomData<fn(T) -> U>,
}

impl<T, U, I, F> RddNode for MapBorrowedNode<T, U, I, F>
where
    T: Data,
    U: Data,
    F: for<'a> Fun1<&'a [T], I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: Send + 'static,
{
    fn meta(&self) -> &NodeMeta {
        &self.meta
    }
    fn num_partitions(&self) -> usize {
        self.parent.num_partitions()
    }
    fn dependencies(&self) -> Vec<Dependency> {
        vec![Dependency::Narrow(self.parent.clone())]
    }
}

impl<T, U, I, F> Compute<U> for MapBorrowedNode<T, U, I, F>
where
    T: Data,
    U: Data,
    F: for<'a> Fun1<&'a [T], I>,
    I: IntoIterator<Item = U> + 'static,
    I::IntoIter: Send + 'static,
{
    fn compute(&self, split: usize, tc: &TaskContext) -> Result<BoxIter<U>> {
        let items = shared_partition(&self.parent, split, tc)?;
        Ok(Box::new(self.f.f.call1(&items[..]).into_iter()))
    }
    fn encode(&self) -> Result<Encoded<Arc<dyn Compute<U>>>> {
        wire::encode_node(self)
    }
}

impl<T: Data> Rdd<T> {
    /// Applies `f` to each partition as one borrowed slice. On a cached RDD that slice is the
    /// cache's own vector: no element is cloned, where [`Rdd::map_partitions`]'s iterator
    /// yields a clone of each; an RDD that is not cached is computed and collected first. Write
    /// the argument's type: `|xs: &[T]| ...`.
    ///
    /// ```
    /// # let ctx = flint_engine::Context::local(2).unwrap();
    /// let words = ctx.parallelize(vec!["a".to_string(), "bcd".to_string(), "ef".to_string()], 2).cache();
    /// let lengths = words.map_partitions_borrowed(|ws: &[String]| vec![ws.iter().map(String::len).sum::<usize>()]);
    /// assert_eq!(lengths.collect().unwrap(), vec![1, 5]);
    /// ```
    #[track_caller]
    pub fn map_partitions_borrowed<U: Data, I, F>(&self, f: F) -> Rdd<U>
    where
        F: for<'a> Fun1<&'a [T], I>,
        I: IntoIterator<Item = U> + 'static,
        I::IntoIter: Send + 'static,
    {
        #[allow(clippy::let_unit_value)]
        let () = <F as Fun1<&[T], I>>::SHIPPABLE;
        let node = MapBorrowedNode {
            meta: NodeMeta::new(&self.ctx, "map_partitions_borrowed", Location::caller()),
            parent: self.node.clone(),
            f: Shipped1::new(f),
            _types: PhantomData,
        };
        Rdd::from_node(&self.ctx, Arc::new(node))
    }
}
