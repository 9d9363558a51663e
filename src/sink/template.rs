//! Templates over a record's fields, rendered for the sinks that take them: Loki labels
//! and structured metadata, the syslog sink's `app_name` and `hostname`.

use crate::capture::record::{Origin, Record, Stream};
use crate::config::{TemplateField, TemplatePart};

/// Renders a template over a record's fields. Host-file records have no container fields
/// and no stream: those render empty (Loki drops empty labels).
pub(crate) fn render(parts: &[TemplatePart], r: &Record, out: &mut String) {
    for p in parts {
        match p {
            TemplatePart::Literal(s) => out.push_str(s),
            TemplatePart::Field(TemplateField::Field(key)) => {
                if let Some(value) = r.field_text(key) {
                    out.push_str(&value);
                }
            }
            TemplatePart::Field(f) => out.push_str(field(f, r)),
        }
    }
}

/// One field of a record, as a template names it ("" when the record has no such field).
fn field<'a>(f: &'a TemplateField, r: &'a Record) -> &'a str {
    match (f, &r.origin) {
        (TemplateField::Stream, _) => r.stream.map_or("", Stream::as_str),
        (TemplateField::Host, o) => o.host(),
        (TemplateField::Path, Origin::HostFile(h)) => &h.path,
        (TemplateField::ContainerId, Origin::Container(c)) => c.id.as_str(),
        (TemplateField::ContainerName, Origin::Container(c)) => &c.name,
        (TemplateField::Image, Origin::Container(c)) => &c.image,
        (TemplateField::Label(key), Origin::Container(c)) => {
            c.labels.get(key).map_or("", String::as_str)
        }
        (
            TemplateField::Path
            | TemplateField::ContainerId
            | TemplateField::ContainerName
            | TemplateField::Image
            | TemplateField::Label(_)
            // Rendered by `render` (a field's value may be made on the spot).
            | TemplateField::Field(_),
            _,
        ) => "",
    }
}
