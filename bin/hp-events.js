#!/usr/bin/env node
import { main } from '../dist/cmd/events.js';
main(process.argv.slice(2));
