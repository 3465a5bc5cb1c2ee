//! Where a target's stages start and end: a segment is pushed when the next step would
//! change files a SAVE ARTIFACT already recorded, and each step is appended to the current
//! segment with its history text.
//!
//! It owns only the segment bookkeeping; it must never decide what a command means.

use super::*;

impl<'a> Converter<'a> {
    /// Push a finished segment as a stage; the artifacts saved in it now know their stage.
    pub(super) fn push_segment(&mut self, ev: &mut Eval, seg: Segment, last: bool) -> u32 {
        let index = self.stages.len() as u32;
        for &a in &seg.saved {
            ev.artifacts[a].stage = index;
        }
        if self.stages.len() >= MAX_STAGES {
            self.fail(
                format!("the build has more than {MAX_STAGES} stages"),
                seg.span,
                "split the Earthfile into several builds",
                "too-many-stages",
            );
        }
        self.stages.push(StageRecord {
            stage: Stage {
                name: None,
                base: seg.base,
                platform: seg.platform,
                instructions: seg.instructions,
                span: seg.span,
                text: seg.text,
            },
            owner: last.then(|| ev.name.clone()),
        });
        index
    }

    /// A target whose recipe does not start with FROM starts from the base recipe.
    pub(super) fn ensure_segment(&mut self, ev: &mut Eval, at: Span) {
        if ev.seg.is_some() {
            return;
        }
        if ev.is_base {
            ev.seg = Some(Segment::new(Base::Scratch, ImageState::scratch(), ev.header, "FROM scratch".into()));
            return;
        }
        let key = self.instance(BASE, ev.overrides.clone(), at, false);
        let seg = match key.map(|k| &self.instances[&k]) {
            Some(base) if !base.trivial => Segment::new(
                Base::Stage(base.stage),
                base.state.clone(),
                ev.header,
                format!("+{}: FROM +base", ev.name),
            ),
            _ => Segment::new(Base::Scratch, ImageState::scratch(), ev.header, format!("+{}: FROM scratch", ev.name)),
        };
        ev.seg = Some(seg);
    }

    /// Before a step that changes files: if the segment saved artifacts, end it there so that
    /// they keep the files as saved.
    pub(super) fn before_file_change(&mut self, ev: &mut Eval, at: Span) {
        self.ensure_segment(ev, at);
        let Some(seg) = ev.seg.as_ref().filter(|s| !s.saved.is_empty()) else { return };
        let state = seg.state.clone();
        let platform = seg.platform.clone();
        let seg = ev.seg.take().expect("checked above");
        let index = self.push_segment(ev, seg, false);
        let mut next = Segment::new(
            Base::Stage(index),
            state,
            at,
            format!("+{}: after SAVE ARTIFACT, line {}", ev.name, at.start.line),
        );
        next.platform = platform;
        ev.seg = Some(next);
    }

    pub(super) fn push(&mut self, ev: &mut Eval, s: &Statement, op: Op, created_by: String) {
        self.ensure_segment(ev, s.span);
        if let Some(seg) = ev.seg.as_mut() {
            seg.instructions.push(Instruction { op, span: s.span, created_by, text: s.text() });
        }
    }
}
