//! The orders export: one CSV row per generated order, written without generating sessions
//! or messages, and without allocating per row.

use std::io::{self, Write};

use crate::calendar::{push_padded, write_local_datetime};
use crate::catalog::CITIES;
use crate::model::Synth;

/// The header line of the orders export.
pub const ORDERS_CSV_HEADER: &str = "customer_id,order_date,amount,order_id,channel,city\n";

/// Bytes gathered before handing them to the writer.
const CHUNK: usize = 1 << 20;

impl Synth {
    /// Writes the orders export of every user to `out` and returns the number of rows (orders)
    /// written, not counting the header.
    ///
    /// The columns are `customer_id` (the user id, `u<index>`), `order_date` (Shanghai local
    /// time, `2025-03-01T20:15:07+08:00`), `amount` (revenue in yuan with two decimals),
    /// `order_id`, `channel` (acquisition channel) and `city`. Rows come user by user, each
    /// user's orders in time order; they are exactly the `Order Completed` events of
    /// [`Synth::user`].
    ///
    /// Writes in chunks of about a megabyte; no need to wrap `out` in a `BufWriter`.
    pub fn write_orders_csv<W: Write>(&self, mut out: W) -> io::Result<u64> {
        let mut buf = Vec::with_capacity(CHUNK + 256);
        buf.extend_from_slice(ORDERS_CSV_HEADER.as_bytes());
        let mut rows = 0u64;
        for index in 0..self.config.users {
            if !self.may_buy(index) {
                continue;
            }
            let sk = self.skeleton(index);
            if !self.buys(&sk) {
                continue;
            }
            let (prof, mut rng) = self.profile(&sk);
            let log = self.purchases(&prof, &mut rng);
            let city = CITIES[prof.city].0.as_bytes();
            let channel = sk.channel.as_str().as_bytes();
            for (k, order) in log.orders.iter().enumerate() {
                buf.push(b'u');
                push_padded(&mut buf, index, 1);
                buf.push(b',');
                write_local_datetime(&mut buf, order.at);
                buf.push(b',');
                push_padded(&mut buf, order.fen / 100, 1);
                buf.push(b'.');
                push_padded(&mut buf, order.fen % 100, 2);
                buf.extend_from_slice(b",o");
                push_padded(&mut buf, index, 1);
                buf.push(b'-');
                push_padded(&mut buf, k as u64 + 1, 1);
                buf.push(b',');
                buf.extend_from_slice(channel);
                buf.push(b',');
                buf.extend_from_slice(city);
                buf.push(b'\n');
                rows += 1;
                if buf.len() >= CHUNK {
                    out.write_all(&buf)?;
                    buf.clear();
                }
            }
        }
        out.write_all(&buf)?;
        out.flush()?;
        Ok(rows)
    }
}
