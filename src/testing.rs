//! What the integration tests, the bench crate and the fuzz targets reach inside the crate
//! for: the parts of a round, the history's records and store, the scheduler's publish path,
//! the parsers they fuzz. Not a stable interface; users of the crate have `cli`, `config`,
//! `Services` and `web`.

pub use crate::discovery::srv::order as srv_order;
pub use crate::discovery::well_known::{WellKnownStatus, judge_answer};
pub use crate::discovery::{IpFamily, Method, Resolution, Severity, SrvOutcome, Target};
pub use crate::error::ProbeError;
pub use crate::history::events::Event;
pub use crate::history::sketch::{ABSOLUTE_MS, ALPHA, Sketch};
pub use crate::history::store::{Retention, RoundRecord, Store};
pub use crate::history::{
    BucketRow, Delta, Sample, ServerHistory, SketchRow, StatusState, Thresholds,
};
pub use crate::i18n::find as locale;
pub use crate::maintenance::incidents::{Incident, Note};
pub use crate::maintenance::{Active, Source};
pub use crate::metrics::Metrics;
pub use crate::net::dns::SrvRecord;
pub use crate::probe::client_api::Discovery as ClientDiscovery;
pub use crate::probe::federation::{FetchedBy, KeyFetches, Outbound, Outcome};
pub use crate::probe::keys::check_keys;
pub use crate::probe::signup::{Newcomer, Signup, SignupStatus};
pub use crate::probe::{AddressReport, Software, median};
pub use crate::report::{Round, ServerReport};
pub use crate::scheduler::board::{Board, Cell};
pub use crate::scheduler::{
    Checked, Monitor, Outlet, Published, Rounds, ServerView, publish_checked, publish_round,
    thresholds,
};
pub use crate::server_name::{Host, ServerName};
pub use crate::signing::Key;
pub use crate::signing::canonical_json;
pub use crate::status::Status;
pub use crate::vantage::REPORT_PATH;
pub use crate::web::listener::REPORTS_IN_FLIGHT;
