//! `tidegate queue push`: payloads from the arguments, or one per line of standard input
//! read and pushed in batches of [`PUSH_BATCH`], so that memory stays bounded however
//! many jobs come in.

use std::io::{self, BufRead, IsTerminal};

use anyhow::{Result, bail};
use tidegate::queue::{Job, JobId, WorkQueue};

use super::PushArgs;
use crate::lines::BoundedLines;

/// Jobs read, checked and pushed at a time from standard input.
pub(super) const PUSH_BATCH: usize = 10_000;

/// Where the jobs come from; the first batch is read (and checked) before connecting.
pub(super) struct Jobs<'a> {
    args: &'a PushArgs,
    stdin: Option<BoundedLines<Box<dyn BufRead + 'a>>>,
    /// Jobs pushed so far, first and last id.
    pushed: u64,
    ids: Option<(JobId, JobId)>,
}

impl<'a> Jobs<'a> {
    /// The jobs of the arguments, or the first batch of standard input.
    pub(super) fn first(args: &'a PushArgs) -> Result<(Self, Vec<Job>)> {
        let mut jobs = Jobs {
            args,
            stdin: None,
            pushed: 0,
            ids: None,
        };
        let first = if args.payloads.is_empty() {
            if io::stdin().is_terminal() {
                eprintln!(
                    "tidegate: reading one JSON payload per line from standard input (Ctrl-D ends)"
                );
            }
            jobs.stdin = Some(BoundedLines::new(Box::new(io::stdin().lock())));
            jobs.next_batch()?
        } else {
            let mut out = Vec::with_capacity(args.payloads.len());
            for (i, p) in args.payloads.iter().enumerate() {
                out.push(jobs.job(&format!("argument {}", i + 1), p)?);
            }
            out
        };
        if first.is_empty() {
            bail!(
                "no job to push: give JSON payloads as arguments or one per line on standard input"
            );
        }
        Ok((jobs, first))
    }

    fn job(&self, at: &str, text: &str) -> Result<Job> {
        let payload: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("{at}: invalid JSON payload ({}): {e}", self.nothing()))?;
        let mut job = Job::new(payload).priority(self.args.priority);
        if let Some(g) = &self.args.group {
            job = job.group(g.clone());
        }
        if let Some(d) = self.args.delay {
            job = job.delay(d);
        }
        job.validate()
            .map_err(|e| anyhow::anyhow!("{at}: {e} ({})", self.nothing()))?;
        Ok(job)
    }

    /// What an error leaves behind.
    fn nothing(&self) -> String {
        match self.ids {
            None => "nothing was pushed".to_string(),
            Some((a, b)) => format!(
                "the {} jobs before it were pushed, ids {a}..{b}; nothing after",
                self.pushed
            ),
        }
    }

    /// The next batch of standard input (empty at its end, or for argument payloads).
    fn next_batch(&mut self) -> Result<Vec<Job>> {
        let mut texts = Vec::new();
        let nothing = self.nothing();
        if let Some(lines) = &mut self.stdin {
            while texts.len() < PUSH_BATCH {
                let Some(line) = lines.next_line() else { break };
                let (n, text) = line.map_err(|e| anyhow::anyhow!("{e:#} ({nothing})"))?;
                if !text.trim().is_empty() {
                    texts.push((n, text.to_string()));
                }
            }
        }
        texts
            .iter()
            .map(|(n, text)| self.job(&format!("line {n}"), text))
            .collect()
    }

    /// Pushes `first`, then every further batch; prints what was pushed.
    pub(super) async fn push_all(
        mut self,
        queue: &WorkQueue,
        name: &str,
        first: Vec<Job>,
    ) -> Result<()> {
        let mut batch = first;
        while !batch.is_empty() {
            let ids = queue
                .push_many(&batch)
                .await
                .map_err(|e| anyhow::anyhow!("{e} ({})", self.nothing()))?;
            if let (Some(&a), Some(&b)) = (ids.first(), ids.last()) {
                self.ids = Some((self.ids.map_or(a, |(first, _)| first), b));
                self.pushed += ids.len() as u64;
            }
            drop(batch);
            batch = self.next_batch()?;
        }
        match self.ids {
            Some((first, last)) if self.pushed > 1 => {
                println!(
                    "pushed {} jobs to {name} (ids {first}..{last})",
                    self.pushed
                )
            }
            Some((id, _)) => println!("pushed 1 job to {name} (id {id})"),
            None => println!("pushed 0 jobs to {name}"),
        }
        Ok(())
    }
}
