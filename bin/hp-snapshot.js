#!/usr/bin/env node
import { main } from '../dist/cmd/snapshot.js';
main(process.argv.slice(2));
