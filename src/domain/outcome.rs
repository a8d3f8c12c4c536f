//! How far a job has got ([`JobState`]) and how a decision ended ([`Outcome`]): the words the
//! state DB, the audit log, the metrics and the CLI share, each spelled once here.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $word:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $word)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word stored in the state DB and shown to operators.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                match s {
                    $($word => Ok($name::$variant),)+
                    other => Err(format!(concat!("unknown ", stringify!($name), " {:?}"), other)),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<$name, String> {
                s.parse()
            }
        }

        /// Compares with the stored word (`outcome == "tagged"`).
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

words! {
    /// Where a job is in its life. `merged` jobs were folded into a newer job of the same ticket.
    JobState {
        Queued => "queued",
        Running => "running",
        Done => "done",
        Dead => "dead",
        Merged => "merged",
    }
}

words! {
    /// How a job's decision ended, as the audit log and `ltv_tagger_jobs_total` record it.
    Outcome {
        /// Tags were written to the ticket.
        Tagged => "tagged",
        /// The ticket already carried every decided tag: nothing written.
        AlreadyTagged => "already_tagged",
        /// The customer earns no tag.
        NoTags => "no_tags",
        /// The order DB has no row for the customer (LTV counts as 0).
        UnknownCustomer => "unknown_customer",
        /// No usable requester email.
        NoEmail => "no_email",
        /// The helpdesk refused the write for good (closed or deleted ticket).
        Rejected => "rejected",
        /// A configuration problem: dead-lettered until fixed and retried.
        Failed => "failed",
        /// Retries ran out: dead-lettered.
        Dead => "dead",
        /// `policy.mode = "shadow"`: decided and recorded, nothing written.
        Shadow => "shadow",
    }
}

impl JobState {
    /// The job is over (nothing more will happen unless an operator retries it).
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Dead | JobState::Merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(*s));
        }
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(*o));
            assert_eq!(
                serde_json::to_string(o).expect("json"),
                format!("\"{}\"", o.as_str())
            );
        }
        assert!("bogus".parse::<Outcome>().is_err());
        // Tables (`demo`, `jobs list`, `audit`) pad these words: Display honours width.
        assert_eq!(format!("{:<8}|", Outcome::Tagged), "tagged  |");
        assert_eq!(format!("{:>4}|", crate::domain::JobId::new(7)), "   7|");
        assert_eq!(
            format!("{:<4}|", crate::domain::TicketId::parse("12").expect("id")),
            "12  |"
        );
    }
}
